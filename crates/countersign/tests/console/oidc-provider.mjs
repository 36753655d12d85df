// A real OpenID Connect provider for the console's browser test (tests/console.rs): the npm
// package `oidc-provider` (pinned in .ci/run), on 127.0.0.1 with a free port.
//
// Protocol with the test, one line each way:
//   1. it listens and prints `issuer http://127.0.0.1:PORT` on stdout;
//   2. it reads one JSON line on stdin: {"client_id", "client_secret", "redirect_uri",
//      "users": {"<login>": "<email>", ...}} (the redirect URI is known only once
//      `countersign serve`, which needs the issuer, has started), builds the provider and
//      prints `ready`. Requests before that are answered 503.
//
// People sign in with the provider's development interactions (a login form taking any
// password, then a consent form); the account id is the login, and its claims are the
// email given for it with `email_verified: true`, which the server maps to a catalog User.
// Run with NODE_PATH naming the node_modules that holds oidc-provider.
import http from 'node:http';
import crypto from 'node:crypto';
import readline from 'node:readline';
import { createRequire } from 'node:module';

// NODE_PATH is honoured by require, not by ESM imports: resolve the package through it.
const require = createRequire(import.meta.url);
const { default: Provider } = await import(require.resolve('oidc-provider'));

let handler = null;
const server = http.createServer((req, res) => {
  if (handler === null) {
    res.writeHead(503, { 'content-type': 'text/plain' });
    res.end('provider not configured yet\n');
    return;
  }
  handler(req, res);
});

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  process.stdout.write(`issuer ${issuer}\n`);
  const lines = readline.createInterface({ input: process.stdin });
  lines.once('line', (line) => {
    const config = JSON.parse(line);
    const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'test-1', alg: 'RS256', use: 'sig' };
    const provider = new Provider(issuer, {
      clients: [{
        client_id: config.client_id,
        client_secret: config.client_secret,
        redirect_uris: [config.redirect_uri],
        grant_types: ['authorization_code'],
        response_types: ['code'],
        token_endpoint_auth_method: config.client_secret ? 'client_secret_basic' : 'none',
      }],
      jwks: { keys: [jwk] },
      // Confidential clients too must send a PKCE challenge: the console always does.
      pkce: { required: () => true },
      claims: { openid: ['sub'], email: ['email', 'email_verified'] },
      // The email in the ID token itself, as Google, Okta and Entra put it: the server maps
      // people by the ID token's claims (the API takes nothing else), and by default this
      // provider would keep them for the userinfo endpoint in the code flow.
      conformIdTokenClaims: false,
      features: { devInteractions: { enabled: true } },
      cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
      async findAccount(ctx, id) {
        const email = config.users[id];
        if (email === undefined) {
          return undefined;
        }
        return {
          accountId: id,
          async claims() {
            return { sub: id, email, email_verified: true };
          },
        };
      },
    });
    // Development interactions accept any login; an unknown one must not become a person.
    provider.on('server_error', (ctx, error) => process.stderr.write(`server_error: ${error.stack}\n`));
    handler = provider.callback();
    process.stdout.write('ready\n');
  });
  // The test closes stdin when it is done (or dies): stop with it.
  lines.on('close', () => process.exit(0));
});
