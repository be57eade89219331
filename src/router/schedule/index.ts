export { ActiveLoad, Booking, type EngineLoad } from "./active-load.js";
export { outputBudget } from "./budget.js";
export { cachedTokens, expectedSource, type CachedTokens, type CachedTokensFallback } from "./cached-tokens.js";
export { POLICIES, type PolicyName, type Scored } from "./policy.js";
export { MAX_ATTEMPTS, shouldRetry, type Failure } from "./retry.js";
export { RobustFit, type RobustFitOptions } from "./robust-fit.js";
export { Attempt, RoutingCore, type RetryOutcome, type RoutingCoreOptions } from "./routing-core.js";
export { Scheduler, type Decision, type RoutablePrompt, type SchedulerOptions } from "./scheduler.js";
export { DEFAULT_PRIOR, EngineTimeModel, type EngineTiming, type TimeFeatures, type TimeModelOptions } from "./time-model.js";
