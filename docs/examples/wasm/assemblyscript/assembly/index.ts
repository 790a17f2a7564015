// A BloxServer WASM tool (docs/wasm.md): reads the input message's JSON, logs it through host.log, and answers
// {"greeting": "Hello, <name>!"}. Built with `npm run build`; the stub runtime keeps memory simple (a bump
// allocator that never collects), which suits one fresh instance per call.

// host.log(level, ptr, len): granted by `capabilities: [log]` in the listener's config.
@external("host", "log")
declare function hostLog(level: i32, ptr: usize, len: i32): void;

export function alloc(len: i32): usize {
  return heap.alloc(<usize>len);
}

export function free(ptr: usize): void {
  heap.free(ptr);
}

function field(json: string, name: string): string {
  // Enough JSON for this example: the string value of "name", without escapes.
  const key = '"' + name + '"';
  let at = json.indexOf(key);
  if (at < 0) return "world";
  at = json.indexOf('"', json.indexOf(":", at + key.length) + 1);
  const end = json.indexOf('"', at + 1);
  return at < 0 || end < 0 ? "world" : json.substring(at + 1, end);
}

export function handle_greet(ptr: usize, len: i32): i64 {
  const input = String.UTF8.decodeUnsafe(ptr, <usize>len);
  const note = String.UTF8.encode("greeting " + field(input, "name"));
  hostLog(1, changetype<usize>(note), note.byteLength);
  const output = String.UTF8.encode('{"greeting":"Hello, ' + field(input, "name") + '!"}');
  // Copy into memory from alloc: the host frees the output pointer after reading it.
  const out = heap.alloc(<usize>output.byteLength);
  memory.copy(out, changetype<usize>(output), <usize>output.byteLength);
  return (<i64>out << 32) | <i64>output.byteLength;
}
