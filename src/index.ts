// kvroute's library entry: the parts a program embedding the router, or a tool built on it, can use.
export * from "./hashing/index.js";
export * from "./protocol/index.js";
export * from "./simulator/index.js";
