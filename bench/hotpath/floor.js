// Baseline 1 of `scripts/bench.sh hotpath`: a Worker that only waits for the
// 80 ms floor and answers. The ceiling of any design with that floor.
export default {
  async fetch() {
    await new Promise((resolve) => setTimeout(resolve, 80));
    return new Response('{"ok":true}', { headers: { "content-type": "application/json" } });
  },
};
