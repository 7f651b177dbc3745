resource "aws_iam_role" "execution" {
  name_prefix = "scaler-exec-${local.short_name}-"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Effect    = "Allow"
        Principal = { Service = "ecs-tasks.amazonaws.com" }
        Action    = "sts:AssumeRole"
      },
    ]
  })
  tags = var.tags
}

resource "aws_iam_role_policy_attachment" "execution" {
  role       = aws_iam_role.execution.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

resource "aws_iam_role" "task" {
  name_prefix = "scaler-task-${local.short_name}-"
  description = "scaler for ECS cluster ${var.cluster_name}: exactly the calls it makes"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Effect    = "Allow"
        Principal = { Service = "ecs-tasks.amazonaws.com" }
        Action    = "sts:AssumeRole"
        Condition = {
          ArnLike      = { "aws:SourceArn" = "arn:${local.partition}:ecs:${local.region}:${local.account_id}:*" }
          StringEquals = { "aws:SourceAccount" = local.account_id }
        }
      },
    ]
  })
  tags = var.tags
}

# The policy's only hand-written copy is deploy/iam/task-role-policy.json (shared with the
# CloudFormation template); its placeholders are exactly these templatefile variables. The
# statement whose Resource is the ${InstanceRoleArns} placeholder passes the container instances'
# roles to EC2: it takes var.instance_role_arns, and is left out when that list is empty.
locals {
  instance_roles_marker = "instance-role-arns"
  task_policy_source = jsondecode(templatefile("${path.module}/../iam/task-role-policy.json", {
    Partition        = data.aws_partition.current.partition
    Region           = data.aws_region.current.name
    AccountId        = data.aws_caller_identity.current.account_id
    ClusterName      = var.cluster_name
    QueueArn           = aws_sqs_queue.events.arn
    DeadLetterQueueArn = aws_sqs_queue.dead_letter.arn
    InstanceRoleArns = local.instance_roles_marker
  }))
  task_policy = {
    Version = local.task_policy_source.Version
    Statement = concat(
      [for s in local.task_policy_source.Statement : s if s.Resource != local.instance_roles_marker],
      [
        for s in local.task_policy_source.Statement : merge(s, { Resource = var.instance_role_arns })
        if s.Resource == local.instance_roles_marker && length(var.instance_role_arns) > 0
      ],
    )
  }
}

resource "aws_iam_role_policy" "task" {
  name   = "scaler"
  role   = aws_iam_role.task.id
  policy = jsonencode(local.task_policy)
}
