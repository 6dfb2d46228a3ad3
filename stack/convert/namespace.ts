/** Naming and labelling of a stack's objects, as `docker stack deploy` does it. */

/** The label every object of a stack carries. */
export const NAMESPACE_LABEL = 'com.docker.stack.namespace';

/** The label a stack's services carry with the image exactly as the file names it. */
export const IMAGE_LABEL = 'com.docker.stack.image';

/** `<stack>_<key>`: the engine name of a stack's object. */
export function scope(stack: string, key: string): string {
  return `${stack}_${key}`;
}

/** `labels` plus the namespace label (a new object; the input is not changed). */
export function withStackLabel(stack: string, labels: Record<string, string> | undefined): Record<string, string> {
  return { ...(labels ?? {}), [NAMESPACE_LABEL]: stack };
}

/** Context every converter gets: the stack, and where errors point. */
export interface ConvertContext {
  stack: string;
  /** Absolute directory relative paths start from. */
  workingDir: string;
  /** Variables (after merging .env, `env:`, process), for `environment:` lookups and `~`. */
  env: Readonly<Record<string, string>>;
  /** Reads a file the Compose files name (env_file, secret and config files); absolute path in. */
  readFile: (path: string) => Buffer | string;
}
