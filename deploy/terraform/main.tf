data "aws_partition" "current" {}
data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

locals {
  partition   = data.aws_partition.current.partition
  region      = data.aws_region.current.name
  account_id  = data.aws_caller_identity.current.account_id
  cluster_arn = "arn:${local.partition}:ecs:${local.region}:${local.account_id}:cluster/${var.cluster_name}"

  # Short cluster name for resources whose names have tight limits (name_prefix adds a suffix).
  short_name    = substr(var.cluster_name, 0, 24)
  alarm_actions = var.alarm_topic_arn == null ? [] : [var.alarm_topic_arn]

  # The scaler container. Kept here (not inline in jsonencode) so tests can read it.
  container = {
    name                   = "scaler"
    image                  = var.image
    essential              = true
    readonlyRootFilesystem = true
    user                   = "10001"
    stopTimeout            = 30 # SIGTERM, then this long to hand unfinished messages back
    portMappings           = [{ containerPort = 9100, protocol = "tcp" }]
    environment = [
      { name = "SCALER_CLUSTER", value = var.cluster_name },
      { name = "SCALER_QUEUE_URL", value = aws_sqs_queue.events.url },
      { name = "SCALER_SPOT_POOLS", value = join(",", var.spot_pools) },
      { name = "SCALER_ON_DEMAND_POOLS", value = join(",", var.on_demand_pools) },
      { name = "SCALER_OVERFLOW_SERVICES", value = join(",", [for service, companion in var.overflow_services : "${service}=${companion}"]) },
      { name = "SCALER_DRY_RUN", value = tostring(var.dry_run) },
      { name = "SCALER_LEASE_TABLE", value = aws_dynamodb_table.lease.name },
      { name = "AWS_REGION", value = local.region },
    ]
    healthCheck = {
      command = [
        "CMD",
        "python",
        "-c",
        "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9100/healthz', timeout=2)",
      ]
      interval    = 30
      timeout     = 5
      retries     = 3
      startPeriod = 30
    }
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        "awslogs-group"         = aws_cloudwatch_log_group.scaler.name
        "awslogs-region"        = local.region
        "awslogs-stream-prefix" = "scaler"
      }
    }
  }
}
