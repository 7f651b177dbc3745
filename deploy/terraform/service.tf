resource "aws_cloudwatch_log_group" "scaler" {
  #checkov:skip=CKV_AWS_158:CloudWatch Logs already encrypts at rest with service keys; a CMK is not needed for operational logs (same as the CloudFormation template)
  #checkov:skip=CKV_AWS_338:retention is the operator's choice (log_retention_days, up to 365); these are operational logs, not an audit trail
  name              = "/scaler/${var.cluster_name}"
  retention_in_days = var.log_retention_days
  tags              = var.tags
}

resource "aws_ecs_task_definition" "scaler" {
  family                   = "scaler-${var.cluster_name}"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = "256"
  memory                   = "512"
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn
  container_definitions    = jsonencode([local.container])

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  tags = var.tags
}

resource "aws_ecs_service" "scaler" {
  name                   = "scaler"
  cluster                = var.cluster_name
  launch_type            = "FARGATE" # not on the cluster's spot instances it is draining
  task_definition        = aws_ecs_task_definition.scaler.arn
  desired_count          = 1
  propagate_tags         = "SERVICE"
  enable_execute_command = false

  # the new scaler starts before the old one stops; events are handled by both meanwhile
  # (idempotently), top-up and rebalancing by the lease holder only
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.subnets
    security_groups  = var.security_groups
    assign_public_ip = var.assign_public_ip
  }

  tags = var.tags

  # the task role's policy must exist before the task starts calling AWS
  depends_on = [aws_iam_role_policy.task, aws_iam_role_policy_attachment.execution]
}
