import { ApiProperty } from '@nestjs/swagger';
import { STATUS_CODES } from 'node:http';

/** The one error shape every native route answers with. */
export class ErrorResponseDto {
  @ApiProperty({ type: 'integer', example: 400 })
  statusCode!: number;

  @ApiProperty({ example: 'Bad Request' })
  error!: string;

  @ApiProperty({ example: 'temperature must not be greater than 2' })
  message!: string;

  @ApiProperty({ example: 'VALIDATION_FAILED' })
  code!: string;

  @ApiProperty({ example: '0b7e9f2c-4a3d-4f7e-9a55-2f1c3b8d6e10' })
  requestId!: string;
}

export function errorResponse(statusCode: number, code: string, message: string, requestId: string): ErrorResponseDto {
  return { statusCode, error: STATUS_CODES[statusCode] ?? 'Error', message, code, requestId };
}
