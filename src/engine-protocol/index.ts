// The engine protocol: framing, messages, the router's engine client and the engine's side of a connection. See docs/protocol.md.
export { EngineClient } from "./client.js";
export type { EngineClientEvents, EngineClientOptions, EngineDisconnect, GenerateOptions, ReconnectOptions } from "./client.js";
export { EngineConnectError } from "./connection.js";
export { EngineSideConnection, type ConnectionCounters, type EngineFinish, type EngineOutput, type EngineSide } from "./engine-side.js";
export type { ConnectErrorCode } from "./connection.js";
export { decodeBody, encodeFrame } from "./codec.js";
export { parseEngineUrl, resolveWildcardHost } from "./endpoint.js";
export type { TcpAddress } from "./endpoint.js";
export { DEFAULT_MAX_FRAME_BYTES, FRAME_HEADER_BYTES, FrameDecoder, FrameError, frameBody } from "./frame.js";
export { stderrLog } from "./log.js";
export type { LogFn, LogLevel } from "./log.js";
export { toGenerateMessage, toWelcomeMessage } from "./build.js";
export { heartbeatTs, parseAbort, parseDelta, parseError, parseFinish, parseGenerate, parseHello, parseWelcome, readEnvelope } from "./parse.js";
export type { Envelope, GenerateCommand, Hello, Parsed } from "./parse.js";
export { PROTOCOL_VERSION } from "./types.js";
export type {
  DeltaEvent,
  EngineEvent,
  Welcome,
  ErrorEvent,
  FinishEvent,
  GenerateRequest,
  KvEventsInfo,
  KvEventsLayout,
  KvTransferParams,
  SamplingOptions,
  TokenLogprobs,
  EngineUsage,
} from "./types.js";
export { ErrorCode } from "./wire.js";
export type * from "./wire.js";
