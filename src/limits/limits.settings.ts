import { ConfigService } from '@nestjs/config';
import { Environment, LimitsFailMode } from '../config/environment';
import type { OrganizationLimits } from './limits.types';

/** What the pipeline and the organization API need of the LIMITS_* configuration. */
export interface LimitsSettings {
  failMode: LimitsFailMode;
  /** Every caller key's requests per minute; null is unlimited. */
  keyRequestsPerMinute: number | null;
  /** The completion tokens assumed, in the estimate, for a call that names no maxTokens. */
  defaultMaxTokens: number;
  /** The limits a new organization gets. */
  organizationDefaults: OrganizationLimits;
}

type OptionalLimit =
  | 'GATEWAY_KEY_REQUESTS_PER_MINUTE'
  | 'LIMITS_DEFAULT_REQUESTS_PER_MINUTE'
  | 'LIMITS_DEFAULT_TOKENS_PER_MINUTE'
  | 'LIMITS_DEFAULT_CONCURRENT_REQUESTS'
  | 'LIMITS_DEFAULT_TOKEN_BUDGET';

export function limitsSettings(config: ConfigService<Environment, true>): LimitsSettings {
  const optional = (name: OptionalLimit) => config.get(name, { infer: true }) ?? null;
  return {
    failMode: config.get('LIMITS_FAIL_MODE', { infer: true }),
    keyRequestsPerMinute: optional('GATEWAY_KEY_REQUESTS_PER_MINUTE'),
    defaultMaxTokens: config.get('LIMITS_DEFAULT_MAX_TOKENS', { infer: true }),
    organizationDefaults: {
      requestsPerMinute: optional('LIMITS_DEFAULT_REQUESTS_PER_MINUTE'),
      tokensPerMinute: optional('LIMITS_DEFAULT_TOKENS_PER_MINUTE'),
      concurrentRequests: optional('LIMITS_DEFAULT_CONCURRENT_REQUESTS'),
      tokenBudget: optional('LIMITS_DEFAULT_TOKEN_BUDGET'),
      budgetPeriod: config.get('LIMITS_DEFAULT_BUDGET_PERIOD', { infer: true }),
    },
  };
}
