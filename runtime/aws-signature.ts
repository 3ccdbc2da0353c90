// providers.aws.sign_req: an http.send request object signed with AWS Signature Version 4, as OPA's
// internal/providers/aws SignV4 does it (canonical request, string to sign, derived key).
import { createHash, createHmac } from 'node:crypto';
import { BuiltinError, isObject } from './builtin-operand.js';
import { goJson } from './go-json.js';
import { toOpaJson } from './opa-json.js';
import { RegoNumber, type RegoValue } from './rego-value.js';
import { escapePath, parseUrl, UrlError } from './uri.js';

const BUILTIN = 'providers.aws.sign_req';
const REQUIRED = ['aws_access_key', 'aws_region', 'aws_secret_access_key', 'aws_service'];
const IGNORED = new Set(['authorization', 'user-agent', 'x-amzn-trace-id']);

const hmac = (key: Buffer | string, message: string) => createHmac('sha256', key).update(message).digest();
const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');

/**
 * providers.aws.sign_req(request, aws_config, time_ns): the request with its signed headers. Takes
 * exact values: the request comes back as it came (a set in its body stays a set), and the body is
 * signed as Go's JSON of it (sets as sorted arrays).
 */
export function signAwsRequest(request: RegoValue, config: RegoValue, timeIn: RegoValue): RegoValue {
  if (!isObject(request)) throw new BuiltinError(BUILTIN, 'operand 1 must be object');
  if (!isObject(config)) throw new BuiltinError(BUILTIN, 'operand 2 must be object');
  const missing = REQUIRED.filter((k) => !(k in config));
  if (missing.length) throw new BuiltinError(BUILTIN, `operand 2 missing required AWS config parameters(s): {${missing.map((k) => JSON.stringify(k)).join(', ')}}`);
  const invalid = REQUIRED.filter((k) => typeof config[k] !== 'string');
  if (invalid.length) throw new BuiltinError(BUILTIN, `operand 2 invalid values for required AWS config parameters(s): {${invalid.map((k) => JSON.stringify(k)).join(', ')}}`);
  // Nanoseconds beyond 2^53 arrive exact; the signature needs only whole milliseconds.
  const timeNs = typeof timeIn === 'number' ? timeIn : timeIn instanceof RegoNumber && timeIn.isInteger ? Number(timeIn.text) : NaN;
  if (!Number.isInteger(timeNs)) throw new BuiltinError(BUILTIN, 'operand 3 could not convert time_ns value into a unix timestamp');
  const headersIn = request.headers ?? {};
  if (!isObject(headersIn)) throw new BuiltinError(BUILTIN, 'operand 0 must be object');
  const bad = ['url', 'method'].filter((k) => typeof request[k] !== 'string');
  if (bad.length) throw new BuiltinError(BUILTIN, `operand 1 invalid values for required request parameters(s): {${bad.map((k) => JSON.stringify(k)).join(', ')}}`);
  let url;
  try {
    url = parseUrl(request.url as string);
  } catch (err) {
    if (err instanceof UrlError) throw new BuiltinError(BUILTIN, err.message);
    throw err;
  }
  const body = 'raw_body' in request ? (typeof request.raw_body === 'string' ? request.raw_body : '') : 'body' in request ? goJson(toOpaJson(request.body!)) : '';
  const disable = config.disable_payload_signing;
  if (disable !== undefined && typeof disable !== 'boolean') throw new BuiltinError(BUILTIN, "operand 2 invalid value for 'disable_payload_signing' in AWS config");
  const service = config.aws_service as string;
  const region = config.aws_region as string;

  const when = new Date(Math.floor(timeNs / 1e6)).toISOString();
  const date = when.slice(0, 10).replaceAll('-', '');
  const stamp = `${date}T${when.slice(11, 19).replaceAll(':', '')}Z`;
  const contentHash = disable ? 'UNSIGNED-PAYLOAD' : sha256(Buffer.from(body, 'utf8'));

  const awsHeaders: Record<string, string> = { host: url.host, 'x-amz-date': stamp };
  if (service === 's3' || service === 'glacier') awsHeaders['x-amz-content-sha256'] = contentHash;
  if (typeof config.aws_session_token === 'string' && config.aws_session_token !== '') awsHeaders['x-amz-security-token'] = config.aws_session_token;
  const toSign = new Map<string, string>(Object.entries(awsHeaders));
  for (const [k, v] of Object.entries(headersIn)) if (!IGNORED.has(k.toLowerCase())) toSign.set(k.toLowerCase(), typeof v === 'string' ? v : '');
  const keys = [...toSign.keys()].sort();
  const canonical = [
    request.method as string,
    url.rawPath || (url.path === '*' ? '*' : escapePath(url.path)),
    url.rawQuery,
    ...keys.map((k) => `${k}:${toSign.get(k)!}`),
    '',
    keys.join(';'),
    contentHash,
  ].join('\n');
  const scope = `${date}/${region}/${service}/aws4_request`;
  const stringToSign = `AWS4-HMAC-SHA256\n${stamp}\n${scope}\n${sha256(canonical)}`;
  let key = hmac(`AWS4${config.aws_secret_access_key as string}`, date);
  for (const part of [region, service, 'aws4_request']) key = hmac(key, part);
  const signature = hmac(key, stringToSign).toString('hex');

  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(headersIn)) headers[k] = typeof v === 'string' ? v : '';
  headers.Authorization = `AWS4-HMAC-SHA256 Credential=${config.aws_access_key as string}/${scope},SignedHeaders=${keys.join(';')},Signature=${signature}`;
  Object.assign(headers, awsHeaders);
  return { ...request, headers };
}
