"""What a deployment needs besides the code: the least-privilege IAM policy for S3 locations."""

from lakeforge.deploy.iam import IamPolicy, IamStatement, iam_policy, write_policy

__all__ = ["IamPolicy", "IamStatement", "iam_policy", "write_policy"]
