"""JSON documents shaped like GitHub Enterprise Server's REST responses.

Field names and nesting follow the recorded responses in ``@octokit/fixtures`` (scenarios
``release-assets`` and ``release-assets-conflict``) and GitHub's REST reference, so PyGithub
objects fill without lazy "complete" round trips for the fields a release needs.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from upm_ci.standins.github_model import Asset, Commit, PullRequest, Release, Repo, Review


def user_id(login: str) -> int:
    """Stable numeric id for a login (GitHub ids never change for a user)."""
    return int.from_bytes(hashlib.sha256(login.encode()).digest()[:3], "big") + 1


def node_id(kind: str, number: int) -> str:
    return base64.b64encode(f"0:{kind}{number}".encode()).decode().rstrip("=")


class Renderer:
    """Turns model objects into GitHub JSON, with URLs pointing back at this server."""

    def __init__(self, base_url: str) -> None:
        self.web = base_url
        self.api = f"{base_url}/api/v3"
        self.uploads = f"{base_url}/api/uploads"

    def user(self, login: str | None) -> dict[str, Any] | None:
        if login is None:
            return None
        uid = user_id(login)
        return {
            "login": login,
            "id": uid,
            "node_id": node_id("User", uid),
            "avatar_url": f"{self.web}/avatars/u/{uid}",
            "gravatar_id": "",
            "url": f"{self.api}/users/{login}",
            "html_url": f"{self.web}/{login}",
            "type": "Bot" if login.endswith("[bot]") else "User",
            "site_admin": False,
        }

    def repo_url(self, repo: Repo) -> str:
        return f"{self.api}/repos/{repo.full_name}"

    def repository(self, repo: Repo, authenticated: bool) -> dict[str, Any]:
        url = self.repo_url(repo)
        doc: dict[str, Any] = {
            "id": repo.id,
            "node_id": node_id("Repository", repo.id),
            "name": repo.name,
            "full_name": repo.full_name,
            "private": repo.private,
            "visibility": "private" if repo.private else "public",
            "owner": self.user(repo.owner),
            "html_url": f"{self.web}/{repo.full_name}",
            "description": None,
            "fork": False,
            "url": url,
            "archived": False,
            "disabled": False,
            "default_branch": repo.default_branch,
            "created_at": repo.created_at,
            "updated_at": repo.created_at,
            "pushed_at": repo.created_at,
            "clone_url": f"{self.web}/{repo.full_name}.git",
            "releases_url": f"{url}/releases{{/id}}",
            "tags_url": f"{url}/tags",
            "branches_url": f"{url}/branches{{/branch}}",
            "commits_url": f"{url}/commits{{/sha}}",
            "compare_url": f"{url}/compare/{{base}}...{{head}}",
            "pulls_url": f"{url}/pulls{{/number}}",
            "git_refs_url": f"{url}/git/refs{{/sha}}",
            "git_tags_url": f"{url}/git/tags{{/sha}}",
        }
        if authenticated:
            doc["permissions"] = {"admin": True, "maintain": True, "push": True, "pull": True}
        return doc

    def commit(self, repo: Repo, commit: Commit, *, full: bool = True) -> dict[str, Any]:
        url = f"{self.repo_url(repo)}/commits/{commit.sha}"
        person = {"name": commit.author_name, "email": commit.author_email, "date": commit.date}
        doc: dict[str, Any] = {
            "sha": commit.sha,
            "node_id": node_id("Commit", int(commit.sha[:8], 16) if _is_hex(commit.sha) else 0),
            "url": url,
            "html_url": f"{self.web}/{repo.full_name}/commit/{commit.sha}",
            "comments_url": f"{url}/comments",
            "commit": {
                "url": f"{self.repo_url(repo)}/git/commits/{commit.sha}",
                "author": person,
                "committer": person,
                "message": commit.message,
                "tree": {
                    "sha": hashlib.sha1(f"tree:{commit.sha}".encode()).hexdigest(),
                    "url": f"{self.repo_url(repo)}/git/trees/{commit.sha}",
                },
                "comment_count": 0,
                "verification": {
                    "verified": False,
                    "reason": "unsigned",
                    "signature": None,
                    "payload": None,
                },
            },
            "author": self.user(commit.author),
            "committer": self.user(commit.author),
            "parents": [
                {
                    "sha": parent,
                    "url": f"{self.repo_url(repo)}/commits/{parent}",
                    "html_url": f"{self.web}/{repo.full_name}/commit/{parent}",
                }
                for parent in commit.parents
            ],
        }
        if full:
            doc["stats"] = {"total": 0, "additions": 0, "deletions": 0}
            doc["files"] = []
        return doc

    def tag(self, repo: Repo, name: str, sha: str) -> dict[str, Any]:
        return {
            "name": name,
            "commit": {"sha": sha, "url": f"{self.repo_url(repo)}/commits/{sha}"},
            "zipball_url": f"{self.repo_url(repo)}/zipball/refs/tags/{name}",
            "tarball_url": f"{self.repo_url(repo)}/tarball/refs/tags/{name}",
            "node_id": node_id("Tag", int(sha[:8], 16) if _is_hex(sha) else 0),
        }

    def ref(self, repo: Repo, ref: str, sha: str) -> dict[str, Any]:
        return {
            "ref": ref,
            "node_id": node_id("Ref", int(hashlib.sha1(ref.encode()).hexdigest()[:8], 16)),
            "url": f"{self.repo_url(repo)}/git/{ref}",
            "object": {
                "sha": sha,
                "type": "commit",
                "url": f"{self.repo_url(repo)}/git/commits/{sha}",
            },
        }

    def branch(self, repo: Repo, name: str, commit: Commit) -> dict[str, Any]:
        return {
            "name": name,
            "commit": self.commit(repo, commit, full=False),
            "protected": False,
            "_links": {
                "self": f"{self.repo_url(repo)}/branches/{name}",
                "html": f"{self.web}/{repo.full_name}/tree/{name}",
            },
        }

    def pull(self, repo: Repo, pull: PullRequest, *, full: bool = True) -> dict[str, Any]:
        url = f"{self.repo_url(repo)}/pulls/{pull.number}"
        state = "closed" if pull.merged else "open"

        def side(ref: str, sha: str) -> dict[str, Any]:
            return {
                "label": f"{repo.owner}:{ref}",
                "ref": ref,
                "sha": sha,
                "user": self.user(repo.owner),
                "repo": self.repository(repo, authenticated=False),
            }

        base_sha = repo.commits[pull.commits[0]].parents[:1]
        doc: dict[str, Any] = {
            "url": url,
            "id": pull.id,
            "node_id": node_id("PullRequest", pull.id),
            "html_url": f"{self.web}/{repo.full_name}/pull/{pull.number}",
            "number": pull.number,
            "state": state,
            "locked": False,
            "title": pull.title,
            "user": self.user(pull.author),
            "body": pull.body,
            "labels": [],
            "created_at": pull.created_at,
            "updated_at": pull.merged_at or pull.created_at,
            "closed_at": pull.merged_at,
            "merged_at": pull.merged_at,
            "merge_commit_sha": pull.merge_commit_sha,
            "draft": False,
            "commits_url": f"{url}/commits",
            "review_comments_url": f"{url}/comments",
            "comments_url": f"{self.repo_url(repo)}/issues/{pull.number}/comments",
            "head": side(pull.head_ref, pull.head_sha),
            "base": side(pull.base_ref, base_sha[0] if base_sha else ""),
            "author_association": "MEMBER",
        }
        if full:
            doc.update(
                {
                    "merged": pull.merged,
                    "mergeable": None if pull.merged else True,
                    "merged_by": self.user(repo.owner) if pull.merged else None,
                    "comments": 0,
                    "review_comments": 0,
                    "commits": len(pull.commits),
                    "additions": 0,
                    "deletions": 0,
                    "changed_files": 0,
                }
            )
        return doc

    def review(self, repo: Repo, pull: PullRequest, review: Review) -> dict[str, Any]:
        pull_url = f"{self.repo_url(repo)}/pulls/{pull.number}"
        return {
            "id": review.id,
            "node_id": node_id("PullRequestReview", review.id),
            "user": self.user(review.user),
            "body": review.body,
            "state": review.state,
            "html_url": f"{self.web}/{repo.full_name}/pull/{pull.number}"
            f"#pullrequestreview-{review.id}",
            "pull_request_url": pull_url,
            "submitted_at": review.submitted_at,
            "commit_id": review.commit_id,
            "author_association": "MEMBER",
        }

    def download_url(self, repo: Repo, release: Release, asset_name: str) -> str:
        """Drafts live under ``untagged-<hex>`` until published, as on GitHub."""
        segment = f"untagged-{release.untagged_slug}" if release.draft else release.tag_name
        return f"{self.web}/{repo.full_name}/releases/download/{segment}/{asset_name}"

    def asset(self, repo: Repo, release: Release, asset: Asset) -> dict[str, Any]:
        return {
            "url": f"{self.repo_url(repo)}/releases/assets/{asset.id}",
            "id": asset.id,
            "node_id": node_id("ReleaseAsset", asset.id),
            "name": asset.name,
            "label": asset.label,
            "uploader": self.user(asset.uploader),
            "content_type": asset.content_type,
            "state": asset.state,
            "size": asset.size,
            "digest": asset.digest,
            "download_count": asset.download_count,
            "created_at": asset.created_at,
            "updated_at": asset.updated_at,
            "browser_download_url": self.download_url(repo, release, asset.name),
        }

    def release(self, repo: Repo, release: Release, assets: list[Asset]) -> dict[str, Any]:
        url = f"{self.repo_url(repo)}/releases/{release.id}"
        html_tag = f"untagged-{release.untagged_slug}" if release.draft else release.tag_name
        return {
            "url": url,
            "assets_url": f"{url}/assets",
            "upload_url": f"{self.uploads}/repos/{repo.full_name}/releases/{release.id}"
            "/assets{?name,label}",
            "html_url": f"{self.web}/{repo.full_name}/releases/tag/{html_tag}",
            "id": release.id,
            "author": self.user(release.author),
            "node_id": node_id("Release", release.id),
            "tag_name": release.tag_name,
            "target_commitish": release.target_commitish,
            "name": release.name,
            "draft": release.draft,
            "immutable": release.immutable,
            "prerelease": release.prerelease,
            "created_at": release.created_at,
            "updated_at": release.updated_at,
            "published_at": release.published_at,
            "assets": [self.asset(repo, release, asset) for asset in assets],
            "tarball_url": f"{self.repo_url(repo)}/tarball/{release.tag_name}",
            "zipball_url": f"{self.repo_url(repo)}/zipball/{release.tag_name}",
            "body": release.body,
        }


def _is_hex(text: str) -> bool:
    return len(text) >= 8 and all(c in "0123456789abcdef" for c in text[:8])
