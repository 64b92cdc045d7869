import { CanActivate, ExecutionContext, ForbiddenException, Injectable, UnauthorizedException } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { FastifyRequest } from 'fastify';
import { ADMIN_ROUTE, PUBLIC_ROUTE } from './auth.decorators';
import { bearerToken, CallerIdentity, CallerKeys } from './caller-keys';

export type AuthenticatedRequest = FastifyRequest & { caller?: CallerIdentity };

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
    const caller = this.keys.identify(bearerToken(request.headers.authorization));
    if (!caller) {
      throw new UnauthorizedException({
        code: 'UNAUTHORIZED',
        message: 'A valid API key is required: Authorization: Bearer <key>',
        headers: { 'www-authenticate': 'Bearer' },
      });
    }
    request.caller = caller;
    if (this.reflector.getAllAndOverride<boolean>(ADMIN_ROUTE, targets) && caller.scope !== 'admin') {
      throw new ForbiddenException({ code: 'FORBIDDEN', message: 'This route needs an admin API key' });
    }
    return true;
  }
}
