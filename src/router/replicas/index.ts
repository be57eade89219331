export { ReplicaSync, type ReplicaParts, type ReplicaSyncOptions } from "./replica-sync.js";
