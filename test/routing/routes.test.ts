// Routes as data (pure): URL and target parsing as the original `mp code route` took them, the
// checks across routes, the Caddy config they become, the ingress service added to the model, and
// the minipaas.yaml edit.
import { describe, expect, it } from 'vitest';
import { caddyConfig, servedRoutes } from '../../agent/routing/caddy-config.ts';
import { withIngress } from '../../agent/routing/ingress.ts';
import { parseRoutes, parseRouteTarget, parseRouteUrl } from '../../agent/routing/routes.ts';
import { rolloutEdits } from '../../cli/commands/code/route.ts';
import { MiniPaasError } from '../../sql/errors.ts';
import { planRouteEdit } from '../../stack/edit/routes.ts';
import type { ComposeModel } from '../../stack/loader/index.ts';

describe('parseRouteUrl', () => {
  it.each([
    ['http://localhost:8000', { scheme: 'http', host: 'localhost', port: 8000, path: '', key: 'http://localhost:8000' }],
    ['http://localhost:8000/api/', { scheme: 'http', host: 'localhost', port: 8000, path: '/api', key: 'http://localhost:8000/api' }],
    ['shop.example.com', { scheme: 'https', host: 'shop.example.com', port: 443, path: '', key: 'https://shop.example.com' }],
    ['Shop.Example.com/v1', { scheme: 'https', host: 'shop.example.com', port: 443, path: '/v1', key: 'https://shop.example.com/v1' }],
    ['http://a.test:80/', { scheme: 'http', host: 'a.test', port: 80, path: '', key: 'http://a.test' }],
    ['https://a.test:8443', { scheme: 'https', host: 'a.test', port: 8443, path: '', key: 'https://a.test:8443' }],
  ])('%s', (url, want) => expect(parseRouteUrl(url)).toEqual(want));

  it.each([
    ['', /is empty/],
    ['http://', /not a URL|no host/],
    ['ftp://a.test', /scheme 'ftp'/],
    ['http://a.test:abc', /not a URL/],
    ['http://u:p@a.test', /credentials/],
    ['http://a.test/?q=1', /query or fragment/],
    ['http://a.test/a*', /wildcards/],
  ])('refuses %j', (url, message) => expect(() => parseRouteUrl(url)).toThrow(message));
});

describe('parseRouteTarget', () => {
  it('takes service:port', () => expect(parseRouteTarget('api:8080')).toEqual({ service: 'api', targetPort: 8080 }));
  it.each([
    ['api', /is not service:port/],
    ['api:abc', /port 'abc' is not a number/],
    ['api:-1', /port '-1' is not a number/],
    ['api:70000', /port '70000'/],
    ['a b:80', /not service:port/],
  ])('refuses %j', (t, message) => expect(() => parseRouteTarget(t)).toThrow(message));
});

describe('parseRoutes', () => {
  it('sorts by port, host, longest path first', () => {
    const routes = parseRoutes({ 'http://a.test:8000': 'web:80', 'http://a.test:8000/api': 'api:8080', 'https://b.test': { to: 'web:80', tls: 'internal' } });
    expect(routes.map((r) => r.key)).toEqual(['https://b.test', 'http://a.test:8000/api', 'http://a.test:8000']);
    expect(routes[0]!.tls).toBe('internal');
  });
  it('refuses one URL twice, a port both http and https, tls internal on http', () => {
    expect(() => parseRoutes({ 'http://a.test': 'web:80', 'http://A.test/': 'api:80' })).toThrow(/routed twice/);
    expect(() => parseRoutes({ 'http://a.test:8000': 'web:80', 'https://b.test:8000': 'api:80' })).toThrow(/both http .* and https/);
    expect(() => parseRoutes({ 'http://a.test': { to: 'web:80', tls: 'internal' } })).toThrow(/needs an https URL/);
  });
});

describe('caddyConfig', () => {
  const config = caddyConfig(parseRoutes({ 'http://localhost:8000/api': 'api:8080', 'https://app.test:8443': { to: 'web:3000', tls: 'internal' } }));
  it('one server per port, dynamic A upstreams of tasks.<service>, retries, admin on localhost', () => {
    expect(config.admin).toEqual({ listen: 'localhost:2019' });
    const servers = (config.apps as { http: { servers: Record<string, { listen: string[]; automatic_https: unknown; routes: unknown[] }> } }).http.servers;
    expect(Object.keys(servers)).toEqual(['mp_8000', 'mp_8443']);
    expect(servers.mp_8000!.automatic_https).toEqual({ disable: true });
    expect(servers.mp_8443!.automatic_https).toEqual({ disable_redirects: true });
    expect(servers.mp_8000!.routes[0]).toMatchObject({
      match: [{ host: ['localhost'], path: ['/api', '/api/*'] }],
      handle: [{ handler: 'reverse_proxy', dynamic_upstreams: { source: 'a', name: 'tasks.api', port: '8080', refresh: '1s' }, load_balancing: { try_duration: '10s' } }],
    });
    expect(config.apps).toMatchObject({ tls: { automation: { policies: [{ subjects: ['app.test'], issuers: [{ module: 'internal' }] }] } } });
  });
  it('reads back as served routes', () => {
    expect(servedRoutes(config)).toEqual([
      { listen: ':8000', host: 'localhost', path: '/api', upstream: 'tasks.api:8080', tls: false },
      { listen: ':8443', host: 'app.test', path: '', upstream: 'tasks.web:3000', tls: true },
    ]);
    expect(servedRoutes(null)).toEqual([]);
  });
});

describe('withIngress', () => {
  const model: ComposeModel = { services: { api: { image: 'x', networks: { back: null } } }, networks: { back: {} }, volumes: {}, secrets: {}, configs: {}, origins: {} };
  it('adds Caddy on the routed services\' networks, publishing the route ports in host mode', () => {
    const out = withIngress(model, parseRoutes({ 'http://localhost:8000': 'api:8080' }));
    expect(out.services.caddy).toMatchObject({ image: 'caddy:2', networks: { back: null }, ports: [{ target: 8000, published: 8000, mode: 'host' }] });
    expect(Object.keys(out.volumes)).toEqual(['caddy_data', 'caddy_config']);
    expect(withIngress(model, [])).toBe(model);
  });
  it('refuses an unknown service with the near miss, and a caddy service of the user', () => {
    expect(() => withIngress(model, parseRoutes({ 'http://a.test': 'apo:80' }))).toThrow(/'apo', which no Compose file defines/);
    const own = { ...model, services: { ...model.services, caddy: { image: 'caddy:2' } } };
    expect(() => withIngress(own, parseRoutes({ 'http://a.test': 'api:80' }))).toThrow(MiniPaasError);
  });
});

describe('rolloutEdits', () => {
  it('start-first, rollback, grace period and a wget healthcheck for busybox', () => {
    const { edits, notes } = rolloutEdits('api', { image: 'busybox:1' }, 8080);
    expect(edits.map((e) => (e.op === 'set' ? e.path.join('.') : ''))).toEqual(['deploy.update_config.order', 'deploy.update_config.failure_action', 'stop_grace_period', 'healthcheck']);
    expect(notes).toEqual([]);
  });
  it('keeps what is set, stop-first with host ports, and says when it cannot add a healthcheck', () => {
    const { edits, notes } = rolloutEdits('api', { image: 'shop/api:1', ports: [{ mode: 'host' }], stop_grace_period: '5s', deploy: { update_config: { failure_action: 'pause' } } }, 8080);
    expect(edits).toEqual([]);
    expect(notes.join('\n')).toMatch(/stop-first[\s\S]*no healthcheck/);
  });
});

describe('planRouteEdit', () => {
  const text = '# env\nproject:\n  files: [compose.yaml] # the files\n';
  it('adds, replaces and removes a route, keeping comments; the same edit twice changes nothing', () => {
    const added = planRouteEdit('m.yaml', text, { op: 'set', key: 'http://localhost:8000', value: 'api:8080' });
    expect(added).toContain('files: [compose.yaml] # the files');
    expect(added).toContain('http://localhost:8000: api:8080');
    expect(planRouteEdit('m.yaml', added, { op: 'set', key: 'http://localhost:8000', value: 'api:8080' })).toBe(added);
    const replaced = planRouteEdit('m.yaml', added, { op: 'set', key: 'http://localhost:8000', value: { to: 'api:9090', tls: 'auto' } });
    expect(replaced).toContain('http://localhost:8000: {to: api:9090, tls: auto}');
    const removed = planRouteEdit('m.yaml', replaced, { op: 'remove', key: 'http://localhost:8000' });
    expect(removed).not.toContain('routes');
    expect(removed).toContain('# env');
  });
});
