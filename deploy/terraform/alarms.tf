resource "aws_cloudwatch_metric_alarm" "dead_letter" {
  alarm_name          = "scaler-${var.cluster_name}-dead-letter"
  alarm_description   = "scaler ${var.cluster_name}: messages the scaler could not read are in the dead-letter queue (docs/alerts.md)"
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = aws_sqs_queue.dead_letter.name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "not_running" {
  alarm_name        = "scaler-${var.cluster_name}-not-running"
  alarm_description = "scaler ${var.cluster_name}: no scaler task is running (docs/alerts.md)"
  namespace         = "AWS/ECS"
  metric_name       = "CPUUtilization"
  dimensions = {
    ClusterName = var.cluster_name
    ServiceName = aws_ecs_service.scaler.name
  }
  statistic           = "SampleCount"
  period              = 60
  evaluation_periods  = 5
  threshold           = 1
  comparison_operator = "LessThanThreshold"
  treat_missing_data  = "breaching" # no task, no data points
  alarm_actions       = local.alarm_actions
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "queue_backlog" {
  alarm_name          = "scaler-${var.cluster_name}-queue-backlog"
  # visible messages, not the oldest message's age: a deferred scheduled change waits hidden
  # on the queue for hours, and is no backlog
  alarm_description   = "scaler ${var.cluster_name}: events wait unread in the queue for 3 minutes (docs/alerts.md)"
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = aws_sqs_queue.events.name }
  statistic           = "Minimum"
  period              = 60
  evaluation_periods  = 3
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  tags                = var.tags
}
