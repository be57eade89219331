// The ceiling for bench:serve: a bare uWebSockets.js server answering every request with a fixed body
// of the size of the router's completion response. Prints its port on stdout.
import uWS from "uWebSockets.js";

const body = JSON.stringify({
  id: "cmpl-0000000000000000000000",
  object: "text_completion",
  created: 0,
  model: "Qwen/Qwen3-0.6B",
  choices: [{ index: 0, text: " word", logprobs: null, finish_reason: "length" }],
  usage: { prompt_tokens: 256, completion_tokens: 1, total_tokens: 257, prompt_tokens_details: { cached_tokens: 0 } },
});

uWS
  .App()
  .any("/*", (res) => {
    // Read (and drop) the body like any POST handler must, then answer.
    res.onAborted(() => undefined);
    res.onData((_chunk, isLast) => {
      if (isLast) res.cork(() => res.writeHeader("content-type", "application/json").end(body));
    });
  })
  .listen("127.0.0.1", 0, (socket) => {
    if (!socket) process.exit(1);
    console.log(uWS.us_socket_local_port(socket as unknown as uWS.us_socket));
  });
