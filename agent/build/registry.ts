/**
 * Where a built image goes: the reference it is pushed as (minipaas.yaml `registry:` plus the image's
 * name and the deploy's version) and the credentials the push uses. Pure functions over names, plus
 * one reader of the credentials a user already has (`docker login` writes them to ~/.docker/config.json).
 *
 * Terminology: a *registry prefix* is minipaas.yaml's `registry:` value, a host with an optional path
 * (`registry.example.com/shop`, `127.0.0.1:5000`); the *registry host* is its first part, the name
 * credentials are kept under.
 */
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../../sql/errors.ts';
import type { RegistryAuth } from '../docker/engine.ts';

/** Docker Hub's name in credential stores. */
const DOCKER_HUB = 'https://index.docker.io/v1/';

/** True when the first path component of a reference names a registry host rather than a Hub namespace. */
function isHost(component: string): boolean {
  return component.includes('.') || component.includes(':') || component === 'localhost';
}

/** `registry:5000/shop/api:1` -> `{ host: 'registry:5000', path: 'shop/api', tag: '1' }`; no host for Hub names. */
export function parseReference(reference: string): { host?: string; path: string; tag?: string } {
  const name = reference.split('@')[0]!;
  const slash = name.indexOf('/');
  const first = slash < 0 ? '' : name.slice(0, slash);
  const host = slash >= 0 && isHost(first) ? first : undefined;
  const rest = host ? name.slice(slash + 1) : name;
  const colon = rest.lastIndexOf(':');
  return colon > rest.lastIndexOf('/') ? { host, path: rest.slice(0, colon), tag: rest.slice(colon + 1) } : { host, path: rest };
}

/** The registry host of a prefix or reference (`127.0.0.1:5000/shop` -> `127.0.0.1:5000`); Docker Hub without one. */
export function registryHost(prefixOrReference: string): string {
  return parseReference(prefixOrReference).host ?? DOCKER_HUB;
}

/**
 * The reference a service's image is pushed as: `<registry>/<name>:<version>`. The name is the image's
 * path without its own registry host (`hello-api:dev` -> `hello-api`); the tag is `version`
 * (minipaas.yaml `deploy.version`), else the image's own tag, else `latest`. An image already under
 * the prefix is pushed as it is named.
 *
 * @example
 *   pushedReference('hello-api:dev', { registry: '127.0.0.1:5000/shop', version: '1.4.2' })  // '127.0.0.1:5000/shop/hello-api:1.4.2'
 *   pushedReference('127.0.0.1:5000/shop/api:3', { registry: '127.0.0.1:5000/shop' })        // '127.0.0.1:5000/shop/api:3'
 */
export function pushedReference(image: string, opts: { registry: string; version?: string }): string {
  const prefix = opts.registry.replace(/\/+$/, '');
  if (/\s|@/.test(prefix) || prefix === '' || /^[a-z]+:\/\//i.test(prefix)) {
    throw new ConfigError(
      'INVALID_REGISTRY',
      `registry '${opts.registry}' in minipaas.yaml is not a registry prefix`,
      'write a host with an optional path and no scheme, e.g. `registry: registry.example.com/shop` or `registry: 127.0.0.1:5000`',
    );
  }
  const name = image.split('@')[0]!;
  if (name.startsWith(`${prefix}/`)) return name;
  const { path, tag } = parseReference(name);
  return `${prefix}/${path}:${opts.version ?? tag ?? 'latest'}`;
}

/** Where `registryCredentials` looks, injectable for tests. */
export interface CredentialSources {
  /** The process environment: MP_REGISTRY_USERNAME and MP_REGISTRY_PASSWORD. */
  env?: Record<string, string | undefined>;
  /** The docker CLI's config file; default `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`. */
  dockerConfig?: string;
}

/**
 * Credentials for pushing to `host`, or undefined for an anonymous push: MP_REGISTRY_USERNAME and
 * MP_REGISTRY_PASSWORD when both are set (CI), else the entry `docker login HOST` left in the docker
 * CLI's config.json. A config that delegates to a credential helper (`credsStore`, `credHelpers`) is
 * refused with a hint rather than silently pushing anonymously: MiniPaaS does not run helpers.
 */
export function registryCredentials(host: string, sources: CredentialSources = {}): RegistryAuth | undefined {
  const env = sources.env ?? process.env;
  const username = env.MP_REGISTRY_USERNAME;
  const password = env.MP_REGISTRY_PASSWORD;
  if (username && password) return { username, password, serveraddress: host };
  if (username || password) {
    throw new ConfigError(
      'REGISTRY_CREDENTIALS_INCOMPLETE',
      `only ${username ? 'MP_REGISTRY_USERNAME' : 'MP_REGISTRY_PASSWORD'} is set; a push to ${host} needs both or neither`,
      'set both MP_REGISTRY_USERNAME and MP_REGISTRY_PASSWORD, or unset them to use `docker login` credentials',
    );
  }
  const path = sources.dockerConfig ?? join(env.DOCKER_CONFIG ?? join(homedir(), '.docker'), 'config.json');
  if (!existsSync(path)) return undefined;
  let config: { auths?: Record<string, { auth?: string; username?: string; password?: string }>; credsStore?: string; credHelpers?: Record<string, string> };
  try {
    config = JSON.parse(readFileSync(path, 'utf8')) as typeof config;
  } catch (err) {
    throw new ConfigError('DOCKER_CONFIG_INVALID', `${path} is not valid JSON: ${(err as Error).message}`, 'fix or remove it, or set MP_REGISTRY_USERNAME and MP_REGISTRY_PASSWORD');
  }
  const entry = config.auths?.[host] ?? config.auths?.[`https://${host}`] ?? config.auths?.[`http://${host}`];
  if (entry?.auth) {
    const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon > 0) return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1), serveraddress: host };
  }
  if (entry?.username && entry.password) return { username: entry.username, password: entry.password, serveraddress: host };
  const helper = config.credHelpers?.[host] ?? (entry ? config.credsStore : undefined);
  if (helper) {
    throw new ConfigError(
      'REGISTRY_CREDENTIAL_HELPER',
      `the credentials for ${host} are kept by the docker credential helper '${helper}' (${path}), which MiniPaaS does not run`,
      'set MP_REGISTRY_USERNAME and MP_REGISTRY_PASSWORD for the push',
    );
  }
  return undefined;
}
