/**
 * The smallest image build: one service's build inputs (`compose.ts`) built on one engine through the
 * Docker API (no docker CLI), with the builder's step lines reported as they come and a failure that
 * names the failing step and what it printed last. Registries, pushes and digests are the next layer's
 * (`mp deploy build`); this returns the local image id.
 *
 * Terminology: a *step* is one Dockerfile instruction as the classic builder runs it (`Step 3/7 : RUN
 * npm ci`); its *output* is what the instruction printed; *status* lines are the builder's own
 * bookkeeping (` ---> Using cache`, `Removing intermediate container ...`).
 */
import type { BuildMessage, DockerEngine } from '../docker/engine.ts';
import { DockerError } from '../../sql/errors.ts';
import { buildContext } from './context.ts';
import type { BuildInputs } from './compose.ts';

/** One line of progress, classified. */
export type BuildProgress =
  | { kind: 'step'; step: number; steps: number; instruction: string; line: string }
  | { kind: 'output'; line: string }
  | { kind: 'status'; line: string };

/** Options of `buildImage`. */
export interface BuildImageOptions {
  /** Called for each line of progress as the engine sends it. */
  onProgress?: (progress: BuildProgress) => void;
  /** Aborts the build (the engine stops it when the connection closes). */
  signal?: AbortSignal;
  /** How many output lines of the failing step the error keeps; default 15. */
  tailLines?: number;
}

/** A built image. */
export interface BuiltImage {
  service: string;
  /** `sha256:...`, the local image id. */
  imageId: string;
  /** Every name it was tagged with: the service's image first. */
  tags: string[];
  /** Entries (files, directories, links) sent as the context. */
  contextEntries: number;
  /** Bytes of file content sent. */
  contextBytes: number;
  durationMs: number;
}

/** A build that failed in a Dockerfile step (or before the first one): which step, and its last output lines. */
export class BuildFailedError extends DockerError {
  constructor(
    /** `3/7 RUN npm ci`, or undefined when the build failed before its first step (a parse error). */
    readonly step: string | undefined,
    /** The last lines the failing step printed, oldest first. */
    readonly output: string[],
    /** What the engine said. */
    readonly engineError: string,
    message: string,
    hint: string,
  ) {
    super('BUILD_FAILED', message, hint);
  }
}

const STEP = /^Step (\d+)\/(\d+) : (.*)$/;
/** The classic builder's own lines, told apart from what a step prints. */
// eslint-disable-next-line no-control-regex -- matching the escape character is the point
const ANSI_COLOUR = /\x1b\[[0-9;]*m/g;
const BOOKKEEPING = /^( ---> |Removing intermediate container |Successfully built |Successfully tagged )/;

/**
 * Turns the builder's text (chunks that split and join lines freely, `\r` for redrawn progress lines)
 * into classified lines, remembering the current step and its recent output.
 */
class ProgressLines {
  step: { step: number; steps: number; instruction: string } | undefined;
  readonly recent: string[] = [];
  private partial = '';

  constructor(
    private readonly keep: number,
    private readonly emit: (p: BuildProgress) => void,
  ) {}

  text(chunk: string): void {
    // The classic builder colours a step's stderr (ESC[91m ... ESC[0m): plain text for messages and logs.
    const lines = (this.partial + chunk.replace(ANSI_COLOUR, '')).split(/\r\n|\n|\r/);
    this.partial = lines.pop() ?? '';
    for (const line of lines) this.line(line);
  }

  flush(): void {
    if (this.partial) this.line(this.partial);
    this.partial = '';
  }

  status(line: string): void {
    this.emit({ kind: 'status', line });
  }

  private line(line: string): void {
    const step = STEP.exec(line);
    if (step) {
      this.step = { step: Number(step[1]), steps: Number(step[2]), instruction: step[3]! };
      this.recent.length = 0;
      this.emit({ kind: 'step', ...this.step, line });
    } else if (BOOKKEEPING.test(line)) {
      this.emit({ kind: 'status', line: line.trim() });
    } else if (line.trim() !== '') {
      this.recent.push(line);
      // Kept a little longer than shown, so a last burst of blank-ish lines does not hide the cause.
      if (this.recent.length > this.keep * 4) this.recent.splice(0, this.recent.length - this.keep * 4);
      this.emit({ kind: 'output', line });
    }
  }
}

function failure(inputs: BuildInputs, lines: ProgressLines, engineError: string, keep: number): BuildFailedError {
  const output = lines.recent.slice(-keep);
  const at = lines.step;
  const step = at ? `${at.step}/${at.steps} ${at.instruction}` : undefined;
  const what = `building image '${inputs.image}' for service '${inputs.service}' failed`;
  const head = step ? `${what} at step ${step}: ${engineError.trim()}` : `${what}: ${engineError.trim()}`;
  const message = output.length ? `${head}\nlast output of the step:\n${output.map((l) => `  | ${l}`).join('\n')}` : head;
  let hint = `fix ${step ? 'that step of' : ''} ${inputs.dockerfile} in ${inputs.context}`.replace(/\s+/g, ' ');
  if (at && /^FROM\s/i.test(at.instruction)) {
    hint =
      'the base image is not on this engine and cannot be pulled; in the lab, .ci/lab.sh builds ' +
      'debian:bookworm and node:20-bookworm-slim locally';
  }
  return new BuildFailedError(step, output, engineError, message, hint);
}

/**
 * Builds the image of one service on `docker` and tags it `inputs.image` (and `inputs.extraTags`);
 * returns its id. Throws `BuildFailedError` (a `DockerError`, code BUILD_FAILED) when a step fails,
 * naming the step and its last output lines; `ConfigError` when the context or Dockerfile is missing.
 *
 * @example
 *   const [api] = buildsOf(model.services, { projectDir }).map((b) => b.inputs);
 *   const built = await buildImage(docker, api, { onProgress: (p) => p.kind === 'step' && console.log(p.line) });
 *   built.imageId // 'sha256:3f1c...'
 */
export async function buildImage(docker: DockerEngine, inputs: BuildInputs, opts: BuildImageOptions = {}): Promise<BuiltImage> {
  const started = Date.now();
  const keep = opts.tailLines ?? 15;
  const { tar, entries } = await buildContext(inputs.context, { dockerfile: inputs.dockerfile });
  const tags = [inputs.image, ...inputs.extraTags.filter((t) => t !== inputs.image)];
  const lines = new ProgressLines(keep, opts.onProgress ?? (() => {}));

  const onMessage = (m: BuildMessage): void => {
    if (m.stream !== undefined) lines.text(m.stream);
    else if (m.status !== undefined) lines.status([m.id, m.status, m.progress].filter(Boolean).join(' '));
  };
  const outcome = await docker.buildImage(
    tar,
    {
      tags,
      dockerfile: inputs.dockerfile,
      buildargs: inputs.args,
      target: inputs.target,
      labels: inputs.labels,
      nocache: inputs.noCache,
      pull: inputs.pull,
      networkmode: inputs.network,
      signal: opts.signal,
    },
    onMessage,
  );
  lines.flush();
  if (outcome.error !== undefined) throw failure(inputs, lines, outcome.error, keep);

  // Engines report the id in an `aux` message; one that did not still tagged the image.
  const imageId = outcome.imageId ?? (await docker.inspectImage(tags[0]!)).id;
  return {
    service: inputs.service,
    imageId,
    tags,
    contextEntries: entries.length,
    contextBytes: entries.reduce((n, e) => n + e.size, 0),
    durationMs: Date.now() - started,
  };
}
