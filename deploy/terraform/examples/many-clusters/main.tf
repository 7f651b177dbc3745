# One scaler stack per ECS cluster, from one definition: the module called with for_each over a
# map of clusters. Each cluster gets its own queue, EventBridge rules, task role, lease table,
# Fargate service and alarms; what the clusters share is said once in locals.
#
#   terraform init && terraform plan
#
# Every queue receives every instance-level event of the region (EventBridge cannot filter them
# by cluster): see docs/many-clusters.md for what that costs and how to watch many scalers.

terraform {
  required_version = ">= 1.5"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0"
    }
  }
}

variable "image" {
  type        = string
  description = "The scaler container image every cluster runs."
}

variable "alarm_topic_arn" {
  type        = string
  default     = null
  description = "SNS topic for every cluster's alarms (none when null)."
}

variable "clusters" {
  description = "The clusters, by ECS cluster name: where each scaler runs and what it may grow."
  type = map(object({
    subnets           = list(string)
    security_groups   = list(string)
    spot_pools        = optional(list(string), [])
    on_demand_pools   = optional(list(string), [])
    overflow_services = optional(map(string), {})
    dry_run           = optional(bool, true)
    extra_environment = optional(map(string), {})
  }))
  default = {
    prod-eu-a = {
      subnets         = ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"]
      security_groups = ["sg-0123456789abcdef0"]
      spot_pools      = ["prod-eu-a-spot-a", "prod-eu-a-spot-b"]
      on_demand_pools = ["prod-eu-a-on-demand"]
      dry_run         = false
    }
    batch-eu-a = {
      subnets         = ["subnet-0123456789abcdef0"]
      security_groups = ["sg-0123456789abcdef0"]
      spot_pools      = ["batch-eu-a-spot"]
      # still being moved over: every action logged and counted, nothing changed
      extra_environment = { SCALER_MIGRATE_SPOT_FLEETS = "sfr-0123456789abcdef0" }
    }
  }
}

locals {
  # what every cluster's scaler shares; a cluster's own extra_environment wins
  shared_environment = {
    SCALER_LOG_FORMAT  = "json"
    SCALER_CONSOLIDATE = "false"
  }
  tags = { team = "platform" }
}

module "scaler" {
  source   = "../.."
  for_each = var.clusters

  cluster_name      = each.key
  image             = var.image
  subnets           = each.value.subnets
  security_groups   = each.value.security_groups
  spot_pools        = each.value.spot_pools
  on_demand_pools   = each.value.on_demand_pools
  overflow_services = each.value.overflow_services
  dry_run           = each.value.dry_run
  extra_environment = merge(local.shared_environment, each.value.extra_environment)
  alarm_topic_arn   = var.alarm_topic_arn
  tags              = merge(local.tags, { cluster = each.key })
}

output "queue_urls" {
  description = "Each cluster's event queue (SCALER_QUEUE_URL)."
  value       = { for name, stack in module.scaler : name => stack.queue_url }
}

output "service_names" {
  description = "Each cluster's scaler service."
  value       = { for name, stack in module.scaler : name => stack.service_name }
}
