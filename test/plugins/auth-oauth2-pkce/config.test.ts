import { expect } from 'chai';
import { authOAuth2Pkce, createKernel, definePlugin, FluidError, parseConfig, type ServerDefinition } from '../../../index.js';
import { readAuthConfig } from '../../../plugins/auth-oauth2-pkce/index.js';
import { pino } from 'pino';

const FILE = '/srv/fluidmcp/metadata.json';

function server(auth: Record<string, unknown>): ServerDefinition {
  return parseConfig({ mcpServers: { 'gmail-mock': { command: 'node', args: ['dist/index.js'], auth } } }, FILE, '/srv/fluidmcp').servers[0]!;
}

const seedAuth = (): Record<string, unknown> => ({
  type: 'oauth2',
  flow: 'pkce',
  authorization_url: 'https://accounts.google.com/o/oauth2/v2/auth',
  token_url: 'https://oauth2.googleapis.com/token',
  scopes: ['https://www.googleapis.com/auth/gmail.readonly'],
  client_id_env: 'GOOGLE_CLIENT_ID',
  client_secret_env: 'GOOGLE_CLIENT_SECRET',
  env_var_name: 'GMAIL_ACCESS_TOKEN',
});

function configError(auth: Record<string, unknown>): string {
  try {
    readAuthConfig(server(auth));
  } catch (err) {
    expect(err).to.be.instanceOf(FluidError);
    expect((err as FluidError).code).to.equal('FMCP_ERR_CONFIG_INVALID');
    return (err as Error).message;
  }
  throw new Error('expected a config error');
}

describe('auth-oauth2-pkce: the auth block', () => {
  it("reads the seed's gmail-mock block", () => {
    const config = readAuthConfig(server(seedAuth()));
    expect(config).to.deep.include({
      authorizationUrl: 'https://accounts.google.com/o/oauth2/v2/auth',
      tokenUrl: 'https://oauth2.googleapis.com/token',
      scopes: ['https://www.googleapis.com/auth/gmail.readonly'],
      clientIdEnv: 'GOOGLE_CLIENT_ID',
      clientSecretEnv: 'GOOGLE_CLIENT_SECRET',
      envVarName: 'GMAIL_ACCESS_TOKEN',
    });
    expect(config.extraParams).to.deep.equal({});
  });

  it('required_scopes: the block\'s scopes unless given; [] checks none; a bad list names the field', () => {
    expect(readAuthConfig(server(seedAuth())).requiredScopes).to.deep.equal(['https://www.googleapis.com/auth/gmail.readonly']);
    expect(readAuthConfig(server({ ...seedAuth(), required_scopes: [] })).requiredScopes).to.deep.equal([]);
    expect(readAuthConfig(server({ ...seedAuth(), required_scopes: ['openid', 'openid'] })).requiredScopes).to.deep.equal(['openid']);
    expect(configError({ ...seedAuth(), required_scopes: 'openid' })).to.equal(
      `${FILE}: mcpServers.gmail-mock.auth.required_scopes: expected a list of scope strings without spaces or quotes, such as ["openid", "email"], or [] to check no scope`,
    );
    expect(configError({ ...seedAuth(), required_scopes: ['a"b'] })).to.contain('auth.required_scopes');
  });

  it('names the file and the field of each mistake, and says what is expected', () => {
    expect(configError({ ...seedAuth(), token_url: 'not a url' })).to.equal(
      `${FILE}: mcpServers.gmail-mock.auth.token_url: expected a URL such as "https://provider.example/oauth/token"`,
    );
    expect(configError({ ...seedAuth(), authorization_url: undefined })).to.contain('mcpServers.gmail-mock.auth.authorization_url: expected a URL');
    expect(configError({ ...seedAuth(), scopes: 'gmail' })).to.contain('auth.scopes: expected a list of scope strings');
    expect(configError({ ...seedAuth(), scopes: ['a b'] })).to.contain('auth.scopes');
    expect(configError({ ...seedAuth(), client_id_env: 42 })).to.contain('auth.client_id_env: expected the name of an environment variable');
    expect(configError({ ...seedAuth(), env_var_name: 'GMAIL TOKEN' })).to.contain('auth.env_var_name');
    expect(configError({ ...seedAuth(), client_secret_env: '' })).to.contain('auth.client_secret_env');
    expect(configError({ ...seedAuth(), extra_params: { access_type: 1 } })).to.contain('auth.extra_params: expected an object of string values');
    expect(configError({ ...seedAuth(), extra_params: { state: 'x' } })).to.contain('auth.extra_params.state: "state" is set by the gateway itself');
    expect(configError({ ...seedAuth(), token_endpoint_auth_method: 'private_key_jwt' })).to.contain(
      'auth.token_endpoint_auth_method: expected one of "client_secret_post", "client_secret_basic", "none"',
    );
    expect(configError({ ...seedAuth(), client_secret_env: undefined, token_endpoint_auth_method: 'client_secret_basic' })).to.contain(
      'auth.client_secret_env: "client_secret_basic" sends a client secret',
    );
    expect(configError({ ...seedAuth(), validate_url: 'ftp://x' })).to.contain('auth.validate_url: expected a URL');
    expect(configError({ ...seedAuth(), validate: 'skip' })).to.equal(
      `${FILE}: mcpServers.gmail-mock.auth.validate: expected "none" (accept tokens without asking the provider), or leave it out to have every token verified`,
    );
    expect(configError({ ...seedAuth(), validate: 'none', validate_url: 'https://oauth2.googleapis.com/tokeninfo' })).to.equal(
      `${FILE}: mcpServers.gmail-mock.auth.validate: "none" turns verification off, yet auth.validate_url is set: remove one of them`,
    );
  });

  it('takes "validate": "none"', () => {
    expect(readAuthConfig(server({ ...seedAuth(), validate: 'none' })).validate).to.equal('none');
    expect(readAuthConfig(server(seedAuth())).validate).to.equal(undefined);
  });

  it('takes extra_params, token_endpoint_auth_method and validate_url', () => {
    const config = readAuthConfig(
      server({
        ...seedAuth(),
        extra_params: { access_type: 'offline', prompt: 'consent' },
        token_endpoint_auth_method: 'client_secret_basic',
        validate_url: 'https://oauth2.googleapis.com/tokeninfo',
      }),
    );
    expect(config.extraParams).to.deep.equal({ access_type: 'offline', prompt: 'consent' });
    expect(config.tokenEndpointAuthMethod).to.equal('client_secret_basic');
    expect(config.validateUrl).to.equal('https://oauth2.googleapis.com/tokeninfo');
  });

  it('stops the kernel from starting with a broken block, naming the field', async () => {
    const def = server({ ...seedAuth(), token_url: 'nope' });
    const anyCommand = definePlugin({
      name: 'test-transport',
      register: (api) =>
        api.transports.register('test', { kind: 'test', claims: () => true, create: () => { throw new Error('not started in this test'); } }, api.name),
    });
    const kernel = createKernel({ port: 0, logger: pino({ level: 'silent' }), servers: [def] }).use(anyCommand).use(authOAuth2Pkce());
    let message = '';
    await kernel.start().catch((err: Error) => (message = err.message));
    expect(message).to.contain('mcpServers.gmail-mock.auth.token_url: expected a URL');
    expect(kernel.state).to.equal('stopped');
  });
});
