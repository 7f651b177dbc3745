# The leader lease: replicas share the queue, one runs top-up and rebalancing (scaler/lease.py).
# Its name is fixed: the task role's policy (deploy/iam/task-role-policy.json) names it.
resource "aws_dynamodb_table" "lease" {
  #checkov:skip=CKV_AWS_119:One record naming the leader and its expiry; encrypted with the AWS owned key.
  name         = "scaler-${var.cluster_name}-lease"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "name"

  attribute {
    name = "name"
    type = "S"
  }

  # notices shared between replicas expire (scaler/aws/shared_notices.py)
  ttl {
    attribute_name = "expires"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled = true
  }

  tags = var.tags
}

resource "aws_sqs_queue" "dead_letter" {
  name_prefix               = "scaler-dlq-${local.short_name}-"
  sqs_managed_sse_enabled   = true
  message_retention_seconds = 1209600 # 14 days to look at what could not be read
  tags                      = var.tags
}

resource "aws_sqs_queue" "events" {
  name_prefix                = "scaler-${local.short_name}-"
  sqs_managed_sse_enabled    = true
  message_retention_seconds  = 345600
  receive_wait_time_seconds  = 20
  visibility_timeout_seconds = 60 # the scaler extends it while it works on a message
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dead_letter.arn
    maxReceiveCount     = 5
  })
  tags = var.tags
}

resource "aws_sqs_queue_policy" "events" {
  queue_url = aws_sqs_queue.events.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "OnlyTheseRulesSend"
        Effect    = "Allow"
        Principal = { Service = "events.amazonaws.com" }
        Action    = "sqs:SendMessage"
        Resource  = aws_sqs_queue.events.arn
        Condition = {
          ArnEquals = {
            "aws:SourceArn" = [for rule in aws_cloudwatch_event_rule.events : rule.arn]
          }
        }
      },
      {
        Sid       = "TlsOnly"
        Effect    = "Deny"
        Principal = "*"
        Action    = "sqs:*"
        Resource  = aws_sqs_queue.events.arn
        Condition = {
          Bool = { "aws:SecureTransport" = "false" }
        }
      },
    ]
  })
}
