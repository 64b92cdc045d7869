import { ApiProperty } from '@nestjs/swagger';
import { STATUS_CODES } from 'node:http';

/** The one error shape every route answers with. */
export class ErrorResponseDto {
  @ApiProperty({ example: 400 })
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

/** `NOT_FOUND` for 404 and so on: the code of errors that have no more precise one. */
export function codeForStatus(statusCode: number): string {
  return (STATUS_CODES[statusCode] ?? 'ERROR').toUpperCase().replace(/[^A-Z0-9]+/g, '_');
}
