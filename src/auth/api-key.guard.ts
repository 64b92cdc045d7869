import { CanActivate, ExecutionContext, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { GatewayError } from '../common/errors/gateway-error';
import { ADMIN_ROUTE, PUBLIC_ROUTE } from './auth.decorators';
import { bearerToken, CallerIdentity, CallerKeys } from './caller-keys';

export type AuthenticatedRequest = FastifyRequest & { caller?: CallerIdentity };

/** Every route under these prefixes needs a key; the routes outside them (health, metrics, docs) are @Public(). */
export const API_ROUTE_PREFIXES = ['/v1/', '/openai/v1/'];

function unauthorized(): GatewayError {
  return new GatewayError('UNAUTHORIZED', 'A valid API key is required: Authorization: Bearer <key>', { 'www-authenticate': 'Bearer' });
}

/**
 * Checks the key as soon as a request for an API route arrives, before its body is read: an unauthenticated
 * caller cannot make the gateway read and parse up to BODY_LIMIT_BYTES of JSON. ApiKeyGuard still decides
 * (public routes, admin scope); this answers early only what the guard would answer anyway.
 */
export function checkCallerKeysEarly(fastify: FastifyInstance, keys: CallerKeys): void {
  if (!keys.enabled) return;
  fastify.addHook('onRequest', async (request: AuthenticatedRequest) => {
    const route = request.routeOptions.url;
    if (!route || !API_ROUTE_PREFIXES.some((prefix) => route.startsWith(prefix))) return;
    const caller = keys.identify(bearerToken(request.headers.authorization));
    if (!caller) throw unauthorized();
    request.caller = caller;
  });
}

/**
 * Every route needs a caller key unless marked @Public(); @AdminOnly() routes need an admin key.
 * Missing, malformed and unknown keys get the same 401, so a caller learns nothing about which keys exist.
 */
@Injectable()
export class ApiKeyGuard implements CanActivate {
  constructor(
    private readonly keys: CallerKeys,
    private readonly reflector: Reflector,
  ) {}

  canActivate(context: ExecutionContext): boolean {
    const targets = [context.getHandler(), context.getClass()];
    if (!this.keys.enabled || this.reflector.getAllAndOverride<boolean>(PUBLIC_ROUTE, targets)) return true;

    const request = context.switchToHttp().getRequest<AuthenticatedRequest>();
    // Identified already by checkCallerKeysEarly() for API routes.
    const caller = request.caller ?? this.keys.identify(bearerToken(request.headers.authorization));
    if (!caller) throw unauthorized();
    request.caller = caller;
    if (this.reflector.getAllAndOverride<boolean>(ADMIN_ROUTE, targets) && caller.scope !== 'admin') {
      throw new GatewayError('FORBIDDEN', 'This route needs an admin API key');
    }
    return true;
  }
}
