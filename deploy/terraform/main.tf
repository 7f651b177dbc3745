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

  # The settings the module sets itself or from its named variables; any other setting comes
  # from var.extra_environment (whose validation keeps these names out of it).
  named_environment = {
    SCALER_CLUSTER           = var.cluster_name
    SCALER_QUEUE_URL         = aws_sqs_queue.events.url
    SCALER_SPOT_POOLS        = join(",", var.spot_pools)
    SCALER_ON_DEMAND_POOLS   = join(",", var.on_demand_pools)
    SCALER_OVERFLOW_SERVICES = join(",", [for service, companion in var.overflow_services : "${service}=${companion}"])
    SCALER_DRY_RUN           = tostring(var.dry_run)
    SCALER_LEASE_TABLE       = aws_dynamodb_table.lease.name
    AWS_REGION               = local.region
  }

  # The scaler container. Kept here (not inline in jsonencode) so tests can read it.
  container = {
    name                   = "scaler"
    image                  = var.image
    essential              = true
    readonlyRootFilesystem = true
    user                   = "10001"
    stopTimeout            = 30 # SIGTERM, then this long to hand unfinished messages back
    portMappings           = [{ containerPort = 9100, protocol = "tcp" }]
    environment            = [for name, value in merge(var.extra_environment, local.named_environment) : { name = name, value = value }]
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
