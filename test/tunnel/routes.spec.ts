import { describe, expect, it } from '@jest/globals';
import { InvalidOptionsError } from '../../lib/core/errors.js';
import type { ClientIdentity } from '../../lib/core/stream-identity.js';
import type { AnnouncedRoute } from '../../lib/tunnel/control/messages.js';
import { announceRoute, clientLabel, parseHostPort, RouteAllowlist, validateRoute, validateRoutes, type AllowlistOptions } from '../../lib/tunnel/routes.js';

function invalid(fn: () => unknown): InvalidOptionsError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidOptionsError);
    return error as InvalidOptionsError;
  }
  throw new Error('expected an InvalidOptionsError');
}

describe('routes: the model and its validation', () => {
  it('a reverse route with defaults, and a forward route', () => {
    expect(validateRoute({ name: 'web', target: '127.0.0.1:8080', serverPort: 18080 })).toEqual({
      name: 'web',
      direction: 'reverse',
      serverPort: 18080,
      listen: undefined,
      target: { host: '127.0.0.1', port: 8080 },
      proxyProtocol: 'none',
      maxConnections: 0,
      connectTimeout: 10_000,
    });
    expect(validateRoute({ name: 'db.primary', direction: 'forward', listen: 15432, target: { host: 'db.lan', port: 5432 }, proxyProtocol: 'v2', maxConnections: 8, connectTimeout: 2000 })).toEqual({
      name: 'db.primary',
      direction: 'forward',
      serverPort: 0,
      listen: { host: '127.0.0.1', port: 15432 },
      target: { host: 'db.lan', port: 5432 },
      proxyProtocol: 'v2',
      maxConnections: 8,
      connectTimeout: 2000,
    });
    expect(validateRoute({ name: 'v6', target: '[::1]:80', proxyProtocol: false }).target).toEqual({ host: '::1', port: 80 });
  });

  const bad: [string, unknown, string, RegExp][] = [
    ['no name', { target: 'a:1' }, 'routes[0].name', /1 to 64 characters/],
    ['a name with a space', { name: 'my web', target: 'a:1' }, 'routes[0].name', /A-Z a-z 0-9/],
    ['a name of 65 characters', { name: 'a'.repeat(65), target: 'a:1' }, 'routes[0].name', /1 to 64/],
    ['no target', { name: 'web' }, 'routes[0].target', /where the connections go/],
    ['a target without a port', { name: 'web', target: 'localhost' }, 'routes[0].target', /"host:port"/],
    ['a target port out of range', { name: 'web', target: 'a:70000' }, 'routes[0].target', /1 to 65535/],
    ['an IPv6 target without brackets', { name: 'web', target: '::1:80' }, 'routes[0].target', /"\[::1\]:port"/],
    ['a direction that is neither', { name: 'web', target: 'a:1', direction: 'sideways' }, 'routes[0].direction', /"reverse", "forward"/],
    ['a server port on a forward route', { name: 'web', target: 'a:1', direction: 'forward', listen: 1, serverPort: 2 }, 'routes[0].serverPort', /set listen/],
    ['a forward route without listen', { name: 'web', target: 'a:1', direction: 'forward' }, 'routes[0].listen', /where the client listens/],
    ['listen on a reverse route', { name: 'web', target: 'a:1', listen: 80 }, 'routes[0].listen', /set serverPort/],
    ['a server port out of range', { name: 'web', target: 'a:1', serverPort: 65536 }, 'routes[0].serverPort', /0 to 65535/],
    ['proxyProtocol true', { name: 'web', target: 'a:1', proxyProtocol: true }, 'routes[0].proxyProtocol', /"v1", "v2" or false/],
    ['a negative maxConnections', { name: 'web', target: 'a:1', maxConnections: -1 }, 'routes[0].maxConnections', /integer/],
    ['a zero connectTimeout', { name: 'web', target: 'a:1', connectTimeout: 0 }, 'routes[0].connectTimeout', /integer/],
    ['a typo', { name: 'web', target: 'a:1', maxConnection: 3 }, 'routes[0].maxConnection', /did you mean "maxConnections"/],
  ];

  it.each(bad)('refuses %s, naming the option', (_name, route, option, message) => {
    const error = invalid(() => validateRoutes([route]));
    expect(error.option).toBe(option);
    expect(error.message).toMatch(message);
  });

  it('refuses two routes with one name, one server port or one listen address, naming the second', () => {
    expect(invalid(() => validateRoutes([{ name: 'a', target: 'x:1' }, { name: 'a', target: 'x:2' }])).message).toMatch(/routes\[1\]\.name: a is already used by routes\[0\]/);
    expect(invalid(() => validateRoutes([{ name: 'a', target: 'x:1', serverPort: 9 }, { name: 'b', target: 'x:2', serverPort: 9 }])).option).toBe('routes[1].serverPort');
    expect(invalid(() => validateRoutes([{ name: 'a', direction: 'forward', listen: 9, target: 'x:1' }, { name: 'b', direction: 'forward', listen: '127.0.0.1:9', target: 'x:2' }])).option).toBe('routes[1].listen');
    // Port 0 (the server picks) twice is fine.
    expect(validateRoutes([{ name: 'a', target: 'x:1' }, { name: 'b', target: 'x:2' }])).toHaveLength(2);
    expect(invalid(() => validateRoutes('web')).option).toBe('routes');
  });

  it('parseHostPort: the forms it takes', () => {
    expect(parseHostPort('example.com:443', 'o')).toEqual({ host: 'example.com', port: 443 });
    expect(parseHostPort('[2001:db8::1]:8443', 'o')).toEqual({ host: '2001:db8::1', port: 8443 });
    expect(parseHostPort('8080', 'o', '127.0.0.1')).toEqual({ host: '127.0.0.1', port: 8080 });
    expect(invalid(() => parseHostPort('8080', 'o')).option).toBe('o');
    expect(invalid(() => parseHostPort('[nothost]:1', 'o')).message).toMatch(/IPv6/);
  });

  it('announces a reverse route without its target (the target is the client\'s business), a forward route with it', () => {
    const [reverse, forward] = validateRoutes([
      { name: 'web', target: '10.0.0.5:8080', serverPort: 18080, maxConnections: 3 },
      { name: 'db', direction: 'forward', listen: 15432, target: 'db.lan:5432', proxyProtocol: 'v1' },
    ]);
    expect(announceRoute(reverse!)).toEqual({ name: 'web', direction: 'reverse', serverPort: 18080, targetHost: '', targetPort: 0, proxyProtocol: 'none', maxConnections: 3, connectTimeout: 10_000 });
    expect(announceRoute(forward!)).toEqual({ name: 'db', direction: 'forward', serverPort: 0, targetHost: 'db.lan', targetPort: 5432, proxyProtocol: 'v1', maxConnections: 0, connectTimeout: 10_000 });
  });
});

const alice: ClientIdentity = { kind: 'key', id: 'alice' };
const bob: ClientIdentity = { kind: 'certificate', subject: 'CN=bob', commonName: 'bob', fingerprint: 'AB:CD:EF' };

function reverse(name: string, serverPort = 0): AnnouncedRoute {
  return { name, direction: 'reverse', serverPort, targetHost: '', targetPort: 0, proxyProtocol: 'none', maxConnections: 0, connectTimeout: 10_000 };
}
function forward(name: string, targetHost: string, targetPort: number): AnnouncedRoute {
  return { name, direction: 'forward', serverPort: 0, targetHost, targetPort, proxyProtocol: 'none', maxConnections: 0, connectTimeout: 10_000 };
}

const RULES: AllowlistOptions = {
  rules: [
    { clients: 'key:alice', names: ['web', 'api-*'], directions: ['reverse'], ports: [8080, '9000-9009'] },
    { clients: ['cert:bob'], names: 'db', directions: ['forward'], targets: ['db.lan:5432', '10.0.0.7:*'] },
    { clients: 'sha256:ab:cd:ef', names: 'metrics', ports: [{ from: 9100, to: 9100 }] },
    { clients: '*', names: 'public', ports: ['20000-20099'] },
  ],
  maxRoutes: 4,
};

describe('routes: the server allowlist', () => {
  const allow = new RouteAllowlist(RULES);

  const verdicts: [string, ClientIdentity | undefined, AnnouncedRoute, string, RegExp?][] = [
    ['alice: web on an allowed port', alice, reverse('web', 8080), 'accepted'],
    ['alice: a wildcard name, a port in a range', alice, reverse('api-v2', 9005), 'accepted'],
    ['alice: port 0, the server picks in her ranges', alice, reverse('web', 0), 'accepted'],
    ['alice: a port outside her ranges', alice, reverse('web', 9010), 'port-not-allowed', /server port 9010 is outside the allowed 8080, 9000-9009/],
    ['alice: a name no rule of hers has', alice, reverse('db', 8080), 'not-allowed', /no allowlist rule lets client key:alice serve route db/],
    ['alice: a forward route where she may only reverse', alice, forward('web', 'db.lan', 5432), 'direction-not-allowed', /direction forward is not allowed/],
    ['bob (certificate): db to an allowed target', bob, forward('db', 'DB.lan', 5432), 'accepted'],
    ['bob: db to a host allowed on any port', bob, forward('db', '10.0.0.7', 6543), 'accepted'],
    ['bob: db to a target not allowed', bob, forward('db', 'db.lan', 22), 'target-not-allowed', /target db\.lan:22 is not among the allowed targets/],
    ['bob: matched by his fingerprint too', bob, reverse('metrics', 9100), 'accepted'],
    ['anyone: public in its range', undefined, reverse('public', 20001), 'accepted'],
    ['anonymous: web is not theirs', undefined, reverse('web', 8080), 'not-allowed', /client anonymous/],
    ['an invalid name', alice, reverse('we b', 8080), 'invalid', /1 to 64 characters/],
    ['a reverse route that names a target', alice, { ...reverse('web', 8080), targetHost: 'x', targetPort: 1 }, 'invalid', /must not name a target/],
    ['a forward route without a target', bob, forward('db', '', 0), 'invalid', /must name a target/],
  ];

  // One argument per row (the rows differ in length): the name, and the row.
  it.each(verdicts.map((row) => [row[0], row] as const))('%s', (_name, [, client, route, status, reason]) => {
    const verdict = allow.check(client, route);
    if (status === 'accepted') expect(verdict.allowed).toBe(true);
    else {
      expect(verdict).toMatchObject({ allowed: false, status });
      if (reason) expect((verdict as { reason: string }).reason).toMatch(reason);
    }
  });

  it('gives the ranges to pick a port in for a route that asks for 0', () => {
    expect(allow.check(alice, reverse('web'))).toEqual({ allowed: true, rule: 0, ports: [{ from: 8080, to: 8080 }, { from: 9000, to: 9009 }] });
  });

  it('the most telling refusal wins when several rules get somewhere', () => {
    const two = new RouteAllowlist({ rules: [{ names: 'web', directions: ['forward'] }, { names: 'web', ports: [80] }] });
    expect(two.check(alice, reverse('web', 81))).toMatchObject({ status: 'port-not-allowed' });
    expect(new RouteAllowlist({ rules: [] }).check(alice, reverse('web', 81))).toMatchObject({ status: 'not-allowed' });
    // A reverse route needs a rule with ports; a forward route a rule with targets.
    const bare = new RouteAllowlist({ rules: [{}] });
    expect(bare.check(alice, reverse('web', 80))).toMatchObject({ status: 'port-not-allowed', reason: /no server ports are allowed/ });
    expect(bare.check(alice, forward('web', 'x', 1))).toMatchObject({ status: 'target-not-allowed' });
  });

  it('answers a whole hello: duplicates, too many routes, what another client holds', () => {
    const routes = [reverse('web', 8080), reverse('web', 8080), reverse('api-a', 9001), reverse('api-b', 9002), reverse('api-c', 9003), reverse('db', 1)];
    const answers = allow.answer(alice, routes, (route) => (route.name === 'api-b' ? { status: 'port-in-use', reason: 'port 9002 is held by client key:carol' } : undefined));
    expect(answers.map((a) => [a.name, a.status])).toEqual([
      ['web', 'accepted'],
      ['web', 'duplicate'],
      ['api-a', 'accepted'],
      ['api-b', 'port-in-use'],
      ['api-c', 'too-many-routes'],
      ['db', 'too-many-routes'],
    ]);
    expect(answers[3]!.text).toBe('port 9002 is held by client key:carol');
    expect(answers.filter((a) => a.status === 'accepted').every((a) => a.text === '' && a.port === 0)).toBe(true);
  });

  it('labels clients as stats, logs and rules name them', () => {
    expect(clientLabel(undefined)).toBe('anonymous');
    expect(clientLabel(alice)).toBe('key:alice');
    expect(clientLabel(bob)).toBe('cert:bob');
    expect(clientLabel({ kind: 'certificate', subject: 'O=x', fingerprint: 'AA:BB' })).toBe('sha256:AA:BB');
  });

  const badRules: [string, unknown, string][] = [
    ['rules not an array', { rules: 'all' }, 'allow.rules'],
    ['a client label of no known kind', { rules: [{ clients: ['alice'] }] }, 'allow.rules[0].clients[0]'],
    ['an empty names list', { rules: [{ names: [] }] }, 'allow.rules[0].names'],
    ['a direction that is neither', { rules: [{ directions: ['up'] }] }, 'allow.rules[0].directions'],
    ['a port range upside down', { rules: [{ ports: ['9-1'] }] }, 'allow.rules[0].ports[0]'],
    ['port 0 in a range', { rules: [{ ports: [0] }] }, 'allow.rules[0].ports[0]'],
    ['a target without a port', { rules: [{ targets: ['db.lan'] }] }, 'allow.rules[0].targets[0]'],
    ['an unknown rule key', { rules: [{ name: 'web' }] }, 'allow.rules[0].name'],
    ['maxRoutes 0', { rules: [], maxRoutes: 0 }, 'allow.maxRoutes'],
  ];

  it.each(badRules)('refuses %s, naming the option', (_name, options, option) => {
    expect(invalid(() => new RouteAllowlist(options as AllowlistOptions)).option).toBe(option);
  });
});
