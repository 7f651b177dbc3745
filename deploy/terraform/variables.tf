variable "cluster_name" {
  type        = string
  description = "The ECS cluster this scaler looks after."

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,255}$", var.cluster_name))
    error_message = "cluster_name must be 1 to 255 letters, digits, hyphens or underscores."
  }
}

variable "image" {
  type        = string
  description = "The scaler container image (built from the repository's Dockerfile)."

  validation {
    condition     = length(trimspace(var.image)) > 0
    error_message = "image must not be empty."
  }
}

variable "spot_pools" {
  type        = list(string)
  default     = []
  description = "SCALER_SPOT_POOLS: spot Auto Scaling group names the scaler may grow (empty to not top up)."

  validation {
    condition     = alltrue([for name in var.spot_pools : can(regex("^[^,\\s]+$", name))])
    error_message = "spot_pools entries must be non-empty and contain no commas or spaces."
  }
}

variable "on_demand_pools" {
  type        = list(string)
  default     = []
  description = "SCALER_ON_DEMAND_POOLS: on-demand Auto Scaling group names used as fallback."

  validation {
    condition     = alltrue([for name in var.on_demand_pools : can(regex("^[^,\\s]+$", name))])
    error_message = "on_demand_pools entries must be non-empty and contain no commas or spaces."
  }
}

variable "overflow_services" {
  type        = map(string)
  default     = {}
  description = "SCALER_OVERFLOW_SERVICES: service name => Fargate companion service name."

  validation {
    condition = alltrue([
      for service, companion in var.overflow_services :
      can(regex("^[^,=\\s]+$", service)) && can(regex("^[^,=\\s]+$", companion))
    ])
    error_message = "overflow_services keys and values must be non-empty and contain no commas, '=' or spaces."
  }
}

variable "dry_run" {
  type        = bool
  default     = true
  description = "SCALER_DRY_RUN. Start with true: the scaler logs what it would do; then set false."
}

variable "extra_environment" {
  type        = map(string)
  default     = {}
  description = "Any other setting `scaler config` lists: SCALER_* variable name => value, as the variable takes it (lists comma-separated)."

  validation {
    condition     = alltrue([for name in keys(var.extra_environment) : can(regex("^SCALER_[A-Z0-9_]+$", name))])
    error_message = "extra_environment keys must be SCALER_ setting names in capitals (scaler config lists them)."
  }

  validation {
    condition     = length(setintersection(keys(var.extra_environment), ["SCALER_CLUSTER", "SCALER_QUEUE_URL", "SCALER_SPOT_POOLS", "SCALER_ON_DEMAND_POOLS", "SCALER_OVERFLOW_SERVICES", "SCALER_DRY_RUN", "SCALER_LEASE_TABLE"])) == 0
    error_message = "extra_environment must not set SCALER_CLUSTER, SCALER_QUEUE_URL or SCALER_LEASE_TABLE (the module sets them), nor SCALER_SPOT_POOLS, SCALER_ON_DEMAND_POOLS, SCALER_OVERFLOW_SERVICES or SCALER_DRY_RUN (use their variables)."
  }
}

variable "subnets" {
  type        = list(string)
  description = "Subnets for the scaler task (private, with a route to the AWS APIs)."

  validation {
    condition     = length(var.subnets) > 0 && alltrue([for id in var.subnets : can(regex("^subnet-[0-9a-f]+$", id))])
    error_message = "subnets must be a non-empty list of subnet IDs (subnet-...)."
  }
}

variable "security_groups" {
  type        = list(string)
  description = "Security groups for the scaler task (let Prometheus reach port 9100)."

  validation {
    condition     = length(var.security_groups) > 0 && alltrue([for id in var.security_groups : can(regex("^sg-[0-9a-f]+$", id))])
    error_message = "security_groups must be a non-empty list of security group IDs (sg-...)."
  }
}

variable "assign_public_ip" {
  type        = bool
  default     = false
  description = "Give the scaler task a public IP (only for public subnets without a NAT gateway)."
}

variable "log_retention_days" {
  type        = number
  default     = 30
  description = "Days the scaler's CloudWatch logs are kept."

  validation {
    condition     = contains([7, 14, 30, 60, 90, 180, 365], var.log_retention_days)
    error_message = "log_retention_days must be one of 7, 14, 30, 60, 90, 180, 365."
  }
}

variable "alarm_topic_arn" {
  type        = string
  default     = null
  description = "SNS topic ARN for the alarms (null for none)."

  validation {
    condition     = var.alarm_topic_arn == null || can(regex("^arn:[^:]+:sns:[^:]+:[0-9]{12}:.+$", var.alarm_topic_arn))
    error_message = "alarm_topic_arn must be null or an SNS topic ARN."
  }
}

variable "instance_role_arns" {
  type        = list(string)
  default     = []
  description = "For template pools: ARNs of the roles in the container instances' instance profiles, which a launch passes to EC2. Empty: no role may be passed, and template pools cannot launch."

  validation {
    condition     = alltrue([for arn in var.instance_role_arns : can(regex("^arn:[^:]+:iam::[0-9]{12}:role/[^*?]+$", arn))])
    error_message = "instance_role_arns entries must be IAM role ARNs, without wildcards."
  }
}

variable "tags" {
  type        = map(string)
  default     = {}
  description = "Tags for every resource the module creates."
}
