// The native limit for the hashing benchmark: the same chained XXH64 over 16-token blocks, in C with
// libxxhash's header inlined (XXH_INLINE_ALL), timed with a monotonic clock.
// usage: chained-xxh64 TOKENS BLOCK_SIZE MIN_MILLISECONDS
// prints: {"ns_per_block": N, "last_hash": "DECIMAL"}
#define XXH_INLINE_ALL
#include <xxhash.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s TOKENS BLOCK_SIZE MIN_MILLISECONDS\n", argv[0]);
    return 2;
  }
  size_t n = strtoul(argv[1], 0, 10), bs = strtoul(argv[2], 0, 10);
  double min_ns = strtod(argv[3], 0) * 1e6;
  uint32_t *tokens = malloc(n * sizeof *tokens);
  // Same token generator as bench/hash.ts, so both sides hash identical bytes.
  for (size_t i = 0; i < n; i++) tokens[i] = (uint32_t)(i + 1) * 2654435761u ^ (uint32_t)(i >> 3);
  size_t blocks = n / bs;
  uint64_t *out = malloc(blocks * sizeof *out);
  uint64_t root = 0x9e3779b97f4a7c15ull;
  double start = now_ns(), elapsed = 0;
  unsigned long rounds = 0;
  do {
    uint64_t seed = root;
    for (size_t b = 0; b < blocks; b++) {
      seed = XXH64(tokens + b * bs, bs * sizeof *tokens, seed);
      out[b] = seed;
    }
    __asm__ volatile("" : : "r"(out) : "memory"); // keep the stores
    rounds++;
    elapsed = now_ns() - start;
  } while (elapsed < min_ns);
  printf("{\"ns_per_block\": %.3f, \"last_hash\": \"%llu\"}\n", elapsed / ((double)rounds * blocks),
         (unsigned long long)out[blocks - 1]);
  free(tokens);
  free(out);
  return 0;
}
