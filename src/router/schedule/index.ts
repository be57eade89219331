export { ActiveLoad, Booking, type EngineLoad } from "./active-load.js";
export { POLICIES, type PolicyName, type Scored } from "./policy.js";
export { Scheduler, type Decision, type SchedulerOptions } from "./scheduler.js";
