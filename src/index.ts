// kvroute's library entry: the parts a program embedding the router, or a tool built on it, can use.
export * from "./hashing/index.js";
export * from "./trace/index.js";
export * from "./replay/index.js";
