// Cleanup that must run to the end: each step runs whatever failed before it (later test files
// must find the host as it was), and the first failure is thrown once all have run.
export async function everyStep(steps: readonly (() => unknown)[]): Promise<void> {
  const errors: unknown[] = [];
  for (const step of steps) {
    try {
      await step();
    } catch (e) {
      errors.push(e);
    }
  }
  if (errors.length) throw errors[0];
}
