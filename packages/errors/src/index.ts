export { ERROR_CODES, type ErrorCode } from './codes.ts';
export { httpStatusOf, isTgError, TgError } from './tg-error.ts';
