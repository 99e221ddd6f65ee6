/**
 * @module
 * RabbitMQ adapters. Only this folder imports amqplib.
 */
export { type AmqpWorkQueueOptions, createAmqpWorkQueue } from "./work_queue.ts";
