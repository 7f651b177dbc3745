output "queue_url" {
  description = "URL of the event queue (SCALER_QUEUE_URL)."
  value       = aws_sqs_queue.events.url
}

output "dead_letter_queue_url" {
  description = "URL of the dead-letter queue."
  value       = aws_sqs_queue.dead_letter.url
}

output "task_role_arn" {
  description = "ARN of the scaler's task role."
  value       = aws_iam_role.task.arn
}

output "service_name" {
  description = "Name of the scaler's ECS service."
  value       = aws_ecs_service.scaler.name
}

output "lease_table_name" {
  description = "The leader lease table (SCALER_LEASE_TABLE)."
  value       = aws_dynamodb_table.lease.name
}
