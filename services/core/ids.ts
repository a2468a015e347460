import { v7 } from 'uuid'

/** Task ids are UUIDv7: time-ordered, so the primary key index doubles as creation order. */
export const newTaskId = (): string => v7()

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
export const isUuid = (value: string): boolean => UUID.test(value)
