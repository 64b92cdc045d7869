import { SetMetadata } from '@nestjs/common';

export const PUBLIC_ROUTE = 'auth:public';
export const ADMIN_ROUTE = 'auth:admin';

/** No key needed (health probes, metrics). */
export const Public = () => SetMetadata(PUBLIC_ROUTE, true);

/** Needs a key from GATEWAY_ADMIN_API_KEYS. */
export const AdminOnly = () => SetMetadata(ADMIN_ROUTE, true);
