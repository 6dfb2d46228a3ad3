/**
 * Reading Compose files for an edit and writing the edited ones back, all or none.
 *
 * A file may change between read and write (an editor saving, a second `mp` command): each is checked
 * against what was read (content hash, and modification time) before anything is written. Each new
 * content goes to a temporary file beside the original (same folder, so `rename` is atomic), and only
 * when every temporary file is written are they renamed over the originals; a rename that fails puts
 * back the files already renamed. A read-only file is refused up front: `rename` would replace it
 * regardless of its mode, which is exactly what a read-only file says not to do.
 */
import { createHash } from 'node:crypto';
import { access, chmod, constants, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { ConfigError, ConflictError, NotFoundError } from '../../sql/errors.ts';

/** A file as read for editing: its content and what identifies that version of it. */
export interface ReadFile {
  path: string;
  content: string;
  mtimeMs: number;
}

/** One file to write: what was read (`before`, and its mtime when known) and the new content. */
export interface FileChange {
  path: string;
  before: string;
  after: string;
  mtimeMs?: number;
}

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');

/** Reads files for an edit. `NotFoundError` naming the first that does not exist. */
export async function readFilesForEdit(paths: string[]): Promise<ReadFile[]> {
  return await Promise.all(
    paths.map(async (path) => {
      try {
        const [content, st] = await Promise.all([readFile(path, 'utf8'), stat(path)]);
        return { path, content, mtimeMs: st.mtimeMs };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
          throw new NotFoundError('COMPOSE_FILE_MISSING', `Compose file ${path} does not exist`, 'check `project.files` in minipaas.yaml');
        }
        throw err;
      }
    }),
  );
}

/** Refuses a file that is read-only (by its mode, or for this user), or that changed since it was read. */
async function check(change: FileChange): Promise<number> {
  let st;
  try {
    st = await stat(change.path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new ConflictError('COMPOSE_FILE_CHANGED', `${change.path} was removed after it was read; nothing was written`, 'run the command again');
    }
    throw err;
  }
  // Root may write anything, so access() alone would not see a 0444 file as read-only.
  const writable = (st.mode & 0o222) !== 0 && (await access(change.path, constants.W_OK).then(() => true, () => false));
  if (!writable) {
    throw new ConfigError(
      'COMPOSE_FILE_READ_ONLY',
      `${change.path} is read-only (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}); nothing was written`,
      `make it writable (chmod u+w ${change.path}) and run the command again`,
    );
  }
  const now = await readFile(change.path, 'utf8');
  if (sha256(now) !== sha256(change.before) || (change.mtimeMs !== undefined && st.mtimeMs !== change.mtimeMs)) {
    throw new ConflictError(
      'COMPOSE_FILE_CHANGED',
      `${change.path} changed on disk after it was read; nothing was written`,
      'run the command again to edit the file as it is now',
    );
  }
  return st.mode & 0o7777;
}

/**
 * Checks, without writing, that every changed file could be written now (writable, unchanged since it
 * was read): commands call it before they record anything else, so bad input writes nothing anywhere.
 */
export async function checkChanges(changes: FileChange[]): Promise<void> {
  for (const c of changes.filter((x) => x.after !== x.before)) await check(c);
}

/**
 * Writes every change whose content differs, or none: checks all first (read-only, changed on disk),
 * then writes temporary files, then renames them into place. Throws `ConfigError`/`ConflictError` with
 * every file as it was.
 *
 * @example
 *   await writeFilesAtomically(planComposeEdits(files, edits).changes);
 */
export async function writeFilesAtomically(changes: FileChange[]): Promise<void> {
  const todo = changes.filter((c) => c.after !== c.before);
  const modes = [];
  for (const c of todo) modes.push(await check(c));
  const temps: string[] = [];
  try {
    for (const [i, c] of todo.entries()) {
      const tmp = join(dirname(c.path), `.${basename(c.path)}.mp-${process.pid}-${Date.now()}-${i}.tmp`);
      const handle = await open(tmp, 'wx', modes[i]);
      temps.push(tmp);
      try {
        await handle.writeFile(c.after);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await chmod(tmp, modes[i]!);
    }
  } catch (err) {
    await Promise.all(temps.map((t) => rm(t, { force: true })));
    throw err;
  }
  const done: FileChange[] = [];
  try {
    for (const [i, c] of todo.entries()) {
      await rename(temps[i]!, c.path);
      done.push(c);
    }
  } catch (err) {
    // Put back what was already replaced, so the set of files stays consistent.
    await Promise.all(done.map((c) => writeFile(c.path, c.before)));
    await Promise.all(temps.map((t) => rm(t, { force: true })));
    throw err;
  }
}
