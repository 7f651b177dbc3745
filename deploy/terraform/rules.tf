locals {
  # One rule per event the scaler acts on. ECS task state changes are understood but not needed:
  # they are many, and nothing is done with them, so no rule sends them.
  event_rules = {
    spot_interruption = {
      description = "spot interruption warnings"
      pattern = {
        source        = ["aws.ec2"]
        "detail-type" = ["EC2 Spot Instance Interruption Warning"]
      }
    }
    rebalance_recommendation = {
      description = "rebalance recommendations"
      pattern = {
        source        = ["aws.ec2"]
        "detail-type" = ["EC2 Instance Rebalance Recommendation"]
      }
    }
    instance_state = {
      description = "instances stopping or terminated"
      pattern = {
        source        = ["aws.ec2"]
        "detail-type" = ["EC2 Instance State-change Notification"]
        detail = {
          state = ["stopping", "shutting-down", "stopped", "terminated"]
        }
      }
    }
    lifecycle_action = {
      description = "Auto Scaling terminate lifecycle actions"
      pattern = {
        source        = ["aws.autoscaling"]
        "detail-type" = ["EC2 Instance-terminate Lifecycle Action"]
      }
    }
    scheduled_change = {
      description = "EC2 scheduled changes (AWS Health)"
      pattern = {
        source        = ["aws.health"]
        "detail-type" = ["AWS Health Event"]
        detail = {
          service           = ["EC2"]
          eventTypeCategory = ["scheduledChange"]
        }
      }
    }
    container_instance = {
      description = "container instance changes"
      pattern = {
        source        = ["aws.ecs"]
        "detail-type" = ["ECS Container Instance State Change"]
        detail = {
          clusterArn = [local.cluster_arn]
        }
      }
    }
    placement_failure = {
      description = "tasks ECS could not place"
      pattern = {
        source        = ["aws.ecs"]
        "detail-type" = ["ECS Service Action"]
        detail = {
          eventName  = ["SERVICE_TASK_PLACEMENT_FAILURE"]
          clusterArn = [local.cluster_arn]
        }
      }
    }
  }
}

resource "aws_cloudwatch_event_rule" "events" {
  for_each = local.event_rules

  name_prefix   = "scaler-${replace(each.key, "_", "-")}-"
  description   = "scaler ${var.cluster_name}: ${each.value.description}"
  event_pattern = jsonencode(each.value.pattern)
  tags          = var.tags
}

resource "aws_cloudwatch_event_target" "queue" {
  for_each = aws_cloudwatch_event_rule.events

  rule      = each.value.name
  target_id = "queue"
  arn       = aws_sqs_queue.events.arn
}
