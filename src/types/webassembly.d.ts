// The part of the WebAssembly JS API that kvroute uses. Node.js has it as a global, but @types/node 20
// does not declare it, and the DOM lib would bring browser globals into a server codebase.
declare namespace WebAssembly {
  class Module {
    constructor(bytes: BufferSource);
  }
  class Memory {
    readonly buffer: ArrayBuffer;
    grow(pages: number): number;
  }
  class Instance {
    constructor(module: Module, imports?: object);
    readonly exports: Record<string, unknown>;
  }
  function compile(bytes: BufferSource): Promise<Module>;
  function instantiate(module: Module, imports?: object): Promise<Instance>;
}
