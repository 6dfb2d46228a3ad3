/**
 * Converging Swarm to a desired stack, in three steps the deploy executor calls:
 * `observeStack` (read), `planStack` (pure: what to do, as JSON), `applyStack` (do it, idempotently).
 * Waiting for the services to converge, releases and rollbacks are the executor's.
 *
 * @example
 *   const observed = await observeStack(docker, desired.name, desired);
 *   const plan = planStack(desired, observed);         // print it for --dry-run
 *   if (plan.changed) await applyStack(docker, plan, { desired, step: ctx.step, signal: ctx.signal });
 */
export { observeStack } from './observe.ts';
export { planStack } from './plan.ts';
export { applyStack, type ApplyOptions, type ApplyResult } from './apply.ts';
export { normaliseServiceSpec, diffSpecs } from './compare.ts';
export {
  DIGEST_LABEL,
  type DeployAction,
  type FieldChange,
  type ObjectKind,
  type ObservedObject,
  type ObservedStack,
  type StackPlan,
} from './types.ts';
