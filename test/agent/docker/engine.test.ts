import { describe, expect, it } from 'vitest';
import { connectDocker, demuxLogs, describeEndpoint } from '../../../agent/docker/engine.ts';
import { fromDockerError, isOutOfSequence } from '../../../agent/docker/errors.ts';
import { ConflictError, DockerError, NotFoundError } from '../../../sql/errors.ts';
import { describeSwarm } from '../../support/docker.ts';

const where = { endpoint: '/var/run/docker.sock', subject: "service 'web'" };

/** An error shaped like docker-modem's for an HTTP status. */
function httpError(statusCode: number, message: string): Error {
  return Object.assign(new Error(`(HTTP code ${statusCode}) unexpected - ${message} `), {
    statusCode,
    json: { message },
  });
}

describe('fromDockerError', () => {
  it('says the engine is unreachable, where, and what to do', () => {
    const err = fromDockerError(Object.assign(new Error('connect ENOENT'), { code: 'ENOENT' }), where);
    expect(err).toBeInstanceOf(DockerError);
    expect(err).toMatchObject({
      code: 'DOCKER_UNREACHABLE',
      message: 'cannot reach the Docker engine at /var/run/docker.sock (ENOENT)',
      hint: 'start dockerd (in the lab: .ci/lab.sh) or set DOCKER_HOST',
    });
  });

  it('tells permission problems apart', () => {
    expect(fromDockerError(Object.assign(new Error('EACCES'), { code: 'EACCES' }), where)).toMatchObject({
      code: 'DOCKER_PERMISSION',
    });
  });

  it('maps 404 to NotFoundError naming the subject', () => {
    const err = fromDockerError(httpError(404, 'service web not found'), where);
    expect(err).toBeInstanceOf(NotFoundError);
    expect((err as NotFoundError).message).toBe("service 'web' does not exist on the Docker engine at /var/run/docker.sock");
  });

  it('explains a node that is not a Swarm manager', () => {
    const err = fromDockerError(
      httpError(503, 'This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect this node to swarm and try again.'),
      where,
    );
    expect(err).toMatchObject({ code: 'DOCKER_NOT_MANAGER' });
    expect((err as DockerError).hint).toContain('docker swarm init');
  });

  it('recognises a lost update race, whatever status the engine used', () => {
    const err = fromDockerError(httpError(500, 'rpc error: code = Unknown desc = update out of sequence'), where);
    expect(err).toBeInstanceOf(ConflictError);
    expect(isOutOfSequence(err)).toBe(true);
    expect(isOutOfSequence(fromDockerError(httpError(409, 'name conflicts with an existing object'), where))).toBe(false);
  });

  it('keeps the engine message for other refusals, on one line', () => {
    const err = fromDockerError(httpError(400, 'invalid mount config'), where) as DockerError;
    expect(err).toBeInstanceOf(DockerError);
    expect(err.message).toBe("the Docker engine at /var/run/docker.sock refused service 'web': invalid mount config");
    expect(err.message).not.toContain('\n');
  });

  it('passes through errors that are not from Docker', () => {
    const abort = new DOMException('aborted', 'AbortError');
    expect(fromDockerError(abort, where)).toBe(abort);
  });
});

describe('demuxLogs', () => {
  const frame = (stream: number, text: string): Buffer => {
    const payload = Buffer.from(text);
    const header = Buffer.alloc(8);
    header[0] = stream;
    header.writeUInt32BE(payload.length, 4);
    return Buffer.concat([header, payload]);
  };

  it('joins stdout and stderr frames in order', () => {
    expect(demuxLogs(Buffer.concat([frame(1, 'hi\n'), frame(2, 'bye\n'), frame(1, 'end')]))).toBe('hi\nbye\nend');
  });

  it('passes TTY output (no frames) through', () => {
    expect(demuxLogs(Buffer.from('plain text\n'))).toBe('plain text\n');
    expect(demuxLogs(Buffer.alloc(0))).toBe('');
  });
});

describe('connectDocker', () => {
  it('names the endpoint as messages show it', () => {
    expect(describeEndpoint(undefined)).toBe('/var/run/docker.sock');
    expect(describeEndpoint('unix:///run/user/1000/docker.sock')).toBe('/run/user/1000/docker.sock');
    expect(describeEndpoint('tcp://10.0.0.5:2376')).toBe('tcp://10.0.0.5:2376');
  });

  it('fails with a DockerError, not a socket error, when no engine is there', async () => {
    const docker = connectDocker({ host: 'unix:///nonexistent/docker.sock' });
    await expect(docker.info()).rejects.toMatchObject({
      name: 'DockerError',
      code: 'DOCKER_UNREACHABLE',
      message: 'cannot reach the Docker engine at /nonexistent/docker.sock (ENOENT)',
    });
    await expect(docker.ping(500)).rejects.toMatchObject({ code: 'DOCKER_UNREACHABLE' });
  });
});

describeSwarm('DockerEngine on the lab', () => {
  it('maps a missing service to NotFoundError', async () => {
    const err = await connectDocker()
      .inspectService('mpt-no-such-service')
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotFoundError);
    expect((err as NotFoundError).message).toMatch(/^service 'mpt-no-such-service' does not exist on the Docker engine at /);
  });
});
