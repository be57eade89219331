export { ActiveLoad, Booking, type EngineLoad } from "./active-load.js";
export { outputBudget } from "./budget.js";
export { externalLoad, NO_EXTERNAL_LOAD, type EngineReport, type ExternalLoad } from "./external-load.js";
export { cachedTokens, expectedSource, type CachedTokens, type CachedTokensFallback } from "./cached-tokens.js";
export { POLICIES, type PolicyName, type Scored } from "./policy.js";
export { MAX_ATTEMPTS, shouldRetry, type Failure } from "./retry.js";
export { Attempt, RoutingCore, type RetryOutcome, type RoutablePrompt, type RoutingCoreOptions } from "./routing-core.js";
export { Scheduler, type Decision, type SchedulerOptions } from "./scheduler.js";
