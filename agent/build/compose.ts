/**
 * A Compose service's `build:` section as build inputs: which directory to send, which Dockerfile,
 * which `ARG`s, stage and labels, and which image name to tag. A pure function over the loaded
 * Compose model (`stack/loader`), so the CLI can check and plan builds before any engine is involved.
 *
 * Compose's rules, as `docker compose build` applies them: `build: ./dir` is `build: { context: ./dir }`;
 * the context is relative to the project directory, the Dockerfile relative to the context; an `args`
 * entry without a value (`- HTTP_PROXY`, `HTTP_PROXY:` or `HTTP_PROXY: null`) takes its value from the
 * environment, and is left out when the environment has none.
 */
import { isAbsolute, relative, resolve, sep } from 'node:path';
import { ConfigError } from '../../sql/errors.ts';

/** What one image build needs; `BuildInputs.context` is absolute. */
export interface BuildInputs {
  /** The Compose service the build is for, for messages. */
  service: string;
  /** The image name to tag (the service's `image:`), e.g. `hello-api:1`. */
  image: string;
  /** More names from `build.tags`. */
  extraTags: string[];
  /** Absolute path of the directory sent as the build context. */
  context: string;
  /** The Dockerfile, relative to the context with `/` separators. */
  dockerfile: string;
  args: Record<string, string>;
  target?: string;
  labels: Record<string, string>;
  noCache: boolean;
  pull: boolean;
  /** The network `RUN` steps use, from `build.network`. */
  network?: string;
}

/** The result of `buildInputsOf`: the inputs, and one warning per key MiniPaaS does not apply. */
export interface ParsedBuild {
  inputs: BuildInputs;
  /** `service 'api': ignoring build.cache_from (...)` lines, for the same report as other ignored keys. */
  warnings: string[];
}

/** Keys that only change how fast or where a build runs, not what it makes: ignored with a warning. */
const IGNORED: Record<string, string> = {
  cache_from: 'the engine\'s local layer cache is used',
  cache_to: 'the engine\'s local layer cache is used',
  platforms: 'images are built for the engine\'s own platform',
  shm_size: 'RUN steps get the engine\'s default /dev/shm',
  isolation: 'Linux engines have one isolation',
  privileged: 'RUN steps are never privileged',
  ulimits: 'RUN steps get the engine\'s default limits',
  extra_hosts: 'RUN steps resolve names with the engine\'s DNS',
};

/** Keys that change what is built: refusing them beats building something else silently. */
const UNSUPPORTED: Record<string, string> = {
  dockerfile_inline: 'write the Dockerfile to a file in the context and name it in `build.dockerfile`',
  additional_contexts: 'copy what the build needs into the one context',
  secrets: 'build secrets need BuildKit; pass a build arg, or build the image with docker buildx and name it in `image:`',
  ssh: 'SSH forwarding needs BuildKit; fetch private sources before the build, into the context',
};

const KNOWN = new Set(['context', 'dockerfile', 'args', 'target', 'labels', 'tags', 'no_cache', 'pull', 'network', ...Object.keys(IGNORED), ...Object.keys(UNSUPPORTED)]);

function isDict(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function scalar(v: unknown): string {
  return typeof v === 'string' ? v : String(v);
}

/**
 * A Compose mapping given as a map (`KEY: value`) or a list (`- KEY=value`): entries whose value is
 * missing are `null`.
 */
function mapping(value: unknown, where: string): Record<string, string | null> {
  const out: Record<string, string | null> = {};
  if (value === undefined || value === null) return out;
  if (Array.isArray(value)) {
    for (const item of value) {
      const text = scalar(item);
      const eq = text.indexOf('=');
      if (eq === 0) throw new ConfigError('COMPOSE_BUILD_INVALID', `${where}: '${text}' has no name before '='`, 'write NAME=value');
      if (eq < 0) out[text] = null;
      else out[text.slice(0, eq)] = text.slice(eq + 1);
    }
    return out;
  }
  if (isDict(value)) {
    for (const [k, v] of Object.entries(value)) out[k] = v === null || v === undefined ? null : scalar(v);
    return out;
  }
  throw new ConfigError('COMPOSE_BUILD_INVALID', `${where} must be a map or a list of NAME=value, got ${JSON.stringify(value)}`, 'see the Compose specification, build section');
}

/** The closest known key to `key`, for "did you mean" hints (edit distance of at most 2). */
function nearMiss(key: string): string | undefined {
  let best: { k: string; d: number } | undefined;
  for (const k of KNOWN) {
    const d = distance(key, k);
    if (d <= 2 && (!best || d < best.d)) best = { k, d };
  }
  return best?.k;
}

function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}

/** What `buildInputsOf` needs besides the service. */
export interface BuildContextOptions {
  /** Absolute project directory: relative contexts start here (the first Compose file's folder). */
  projectDir: string;
  /** Values for `args` entries given without one (the interpolation environment). */
  env?: Record<string, string | undefined>;
}

/**
 * The build inputs of one service, or undefined when it has no `build:`. Throws `ConfigError` for a
 * `build:` that cannot be built as written: no `image:` to tag, a remote (git/URL) context, a
 * Dockerfile outside the context, keys that need BuildKit, unknown keys (with the near miss).
 *
 * @example
 *   buildInputsOf('api', { image: 'hello-api:1', build: { context: './app', target: 'api' } }, { projectDir: '/srv/hello' })
 *   // { inputs: { service: 'api', image: 'hello-api:1', context: '/srv/hello/app', dockerfile: 'Dockerfile', target: 'api', ... }, warnings: [] }
 */
export function buildInputsOf(service: string, definition: Record<string, unknown>, opts: BuildContextOptions): ParsedBuild | undefined {
  const raw = definition.build;
  if (raw === undefined || raw === null) return undefined;
  const where = `service '${service}': build`;
  const build: Record<string, unknown> = typeof raw === 'string' ? { context: raw } : isDict(raw) ? raw : {};
  if (!isDict(raw) && typeof raw !== 'string') {
    throw new ConfigError('COMPOSE_BUILD_INVALID', `${where} must be a path or a map, got ${JSON.stringify(raw)}`, 'write `build: ./dir` or `build: { context: ./dir, dockerfile: Dockerfile }`');
  }

  const warnings: string[] = [];
  for (const key of Object.keys(build)) {
    if (key in UNSUPPORTED) {
      throw new ConfigError('COMPOSE_BUILD_UNSUPPORTED', `${where}.${key} is not supported by MiniPaaS builds`, UNSUPPORTED[key]);
    }
    if (key in IGNORED) warnings.push(`${where}: ignoring build.${key} (${IGNORED[key]})`);
    else if (!KNOWN.has(key) && !key.startsWith('x-')) {
      const near = nearMiss(key);
      throw new ConfigError(
        'COMPOSE_BUILD_INVALID',
        `${where} has an unknown key '${key}'`,
        near ? `did you mean '${near}'?` : `known keys: ${[...KNOWN].sort().join(', ')}`,
      );
    }
  }

  const image = definition.image;
  if (typeof image !== 'string' || image.trim() === '') {
    throw new ConfigError(
      'COMPOSE_BUILD_NO_IMAGE',
      `service '${service}' has a build section but no image name to tag the result with`,
      `add e.g. \`image: ${service}:\${VERSION}\` to the service: Swarm runs images by name`,
    );
  }

  const contextText = build.context === undefined ? '.' : scalar(build.context);
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(contextText) || /^git@|\.git(#|$)/.test(contextText)) {
    throw new ConfigError(
      'COMPOSE_BUILD_REMOTE_CONTEXT',
      `${where}.context '${contextText}' is a remote context; MiniPaaS builds from local directories`,
      'clone the repository next to the Compose file and point build.context at the folder',
    );
  }
  const context = resolve(opts.projectDir, contextText);

  const dockerfileText = build.dockerfile === undefined ? 'Dockerfile' : scalar(build.dockerfile);
  // Compose allows an absolute Dockerfile path; the engine only reads one inside the context tar.
  const dockerfilePath = isAbsolute(dockerfileText) ? dockerfileText : resolve(context, dockerfileText);
  const inContext = relative(context, dockerfilePath);
  if (inContext === '' || inContext.startsWith('..') || isAbsolute(inContext)) {
    throw new ConfigError(
      'BUILD_DOCKERFILE_OUTSIDE',
      `${where}.dockerfile '${dockerfileText}' is outside the build context ${context}`,
      'move the Dockerfile into the context, or widen build.context to a folder that holds both',
    );
  }

  const args: Record<string, string> = {};
  for (const [name, value] of Object.entries(mapping(build.args, `${where}.args`))) {
    const resolved = value ?? opts.env?.[name];
    if (resolved !== undefined) args[name] = resolved;
  }
  const labels: Record<string, string> = {};
  for (const [name, value] of Object.entries(mapping(build.labels, `${where}.labels`))) labels[name] = value ?? '';

  const extraTags = Array.isArray(build.tags) ? build.tags.map(scalar) : [];
  return {
    inputs: {
      service,
      image,
      extraTags,
      context,
      dockerfile: inContext.split(sep).join('/'),
      args,
      target: build.target === undefined ? undefined : scalar(build.target),
      labels,
      noCache: build.no_cache === true,
      pull: build.pull === true,
      network: build.network === undefined ? undefined : scalar(build.network),
    },
    warnings,
  };
}

/**
 * The build inputs of every service of a Compose model that has `build:`, in service name order.
 *
 * @example
 *   const builds = buildsOf(model.services, { projectDir: '/srv/hello', env });
 */
export function buildsOf(services: Record<string, Record<string, unknown>>, opts: BuildContextOptions): ParsedBuild[] {
  return Object.keys(services)
    .sort()
    .flatMap((name) => {
      const parsed = buildInputsOf(name, services[name]!, opts);
      return parsed ? [parsed] : [];
    });
}
