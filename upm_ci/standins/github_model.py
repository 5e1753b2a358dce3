"""State and rules of the GitHub stand-in: repositories, history, pull requests, releases.

Kept apart from HTTP so the rules GitHub enforces (drafts hidden from tag lookup, duplicate
asset names, immutable releases, tags protected by immutable releases) read as plain code
and can be seeded directly. Every method takes the store's lock; callers never need to.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

REVIEW_STATES = ("APPROVED", "CHANGES_REQUESTED", "COMMENTED", "DISMISSED", "PENDING")
IMMUTABLE_UPLOAD_MESSAGE = "Cannot upload assets to an immutable release."
IMMUTABLE_ASSET_CHANGE_MESSAGE = "Cannot modify or delete assets of an immutable release."
IMMUTABLE_TAG_MESSAGE = "Cannot change the tag of an immutable release."


def utc_now() -> str:
    """GitHub's timestamp format: second precision, UTC, trailing Z."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class ApiError(Exception):
    """A refusal GitHub would answer with: the HTTP status and the JSON body it sends."""

    def __init__(self, status: int, message: str, errors: Sequence[dict[str, str]] = ()) -> None:
        super().__init__(f"{status} {message}")
        self.status = status
        self.message = message
        self.errors = list(errors)

    def body(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"message": self.message}
        if self.errors:
            doc["errors"] = self.errors
        doc["documentation_url"] = "https://docs.github.com/rest"
        doc["status"] = str(self.status)
        return doc


def not_found() -> ApiError:
    return ApiError(404, "Not Found")


def validation_failed(resource: str, code: str, field_name: str, message: str = "") -> ApiError:
    error = {"resource": resource, "code": code, "field": field_name}
    if message:
        error["message"] = message
    return ApiError(422, "Validation Failed", [error])


@dataclass
class Commit:
    sha: str
    message: str
    author: str | None
    parents: list[str]
    author_name: str = ""
    author_email: str = ""
    date: str = field(default_factory=utc_now)


@dataclass
class Review:
    id: int
    user: str
    state: str
    submitted_at: str
    body: str = ""
    commit_id: str | None = None


@dataclass
class PullRequest:
    number: int
    id: int
    author: str
    title: str
    body: str
    head_sha: str
    head_ref: str
    base_ref: str
    merged: bool
    merge_commit_sha: str | None
    commits: list[str]
    reviews: list[Review]
    created_at: str
    merged_at: str | None


@dataclass
class Asset:
    id: int
    release_id: int
    name: str
    label: str
    content_type: str
    state: str
    data: bytes
    uploader: str
    created_at: str
    updated_at: str
    download_count: int = 0

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def digest(self) -> str | None:
        """``sha256:<hex>`` as GitHub reports it; none for an upload that never finished."""
        if self.state != "uploaded":
            return None
        return "sha256:" + hashlib.sha256(self.data).hexdigest()


@dataclass
class Release:
    id: int
    tag_name: str
    target_commitish: str
    name: str | None
    body: str | None
    draft: bool
    prerelease: bool
    make_latest: str
    author: str
    created_at: str
    published_at: str | None
    untagged_slug: str
    immutable: bool = False
    asset_ids: list[int] = field(default_factory=list)
    updated_at: str = field(default_factory=utc_now)


@dataclass
class Repo:
    id: int
    owner: str
    name: str
    default_branch: str
    immutable_releases: bool
    private: bool = False
    created_at: str = field(default_factory=utc_now)
    commits: dict[str, Commit] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    pulls: dict[int, PullRequest] = field(default_factory=dict)
    releases: dict[int, Release] = field(default_factory=dict)
    assets: dict[int, Asset] = field(default_factory=dict)
    latest_release_id: int | None = None
    tags_of_immutable_releases: set[str] = field(default_factory=set)

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


def sanitize_asset_name(name: str) -> str:
    """GitHub renames special characters to '.' and drops leading/trailing dots (approximation)."""
    cleaned = re.sub(r"[^A-Za-z0-9._+\-]", ".", name).strip(".")
    return cleaned or "default"


class GitHubState:
    """The whole server's data, guarded by one lock (requests run on many threads)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.repos: dict[tuple[str, str], Repo] = {}
        self._ids = itertools.count(1000)
        self._sha_counter = itertools.count(1)

    def next_id(self) -> int:
        with self.lock:
            return next(self._ids)

    # -- repositories and history ---------------------------------------------------------

    def add_repo(
        self,
        owner: str,
        name: str,
        *,
        default_branch: str = "main",
        immutable_releases: bool = False,
        private: bool = False,
    ) -> Repo:
        with self.lock:
            key = (owner.lower(), name.lower())
            if key in self.repos:
                raise ValueError(f"repository {owner}/{name} already exists")
            repo = Repo(
                id=self.next_id(),
                owner=owner,
                name=name,
                default_branch=default_branch,
                immutable_releases=immutable_releases,
                private=private,
            )
            self.repos[key] = repo
            return repo

    def repo(self, owner: str, name: str) -> Repo:
        with self.lock:
            found = self.repos.get((owner.lower(), name.lower()))
            if found is None:
                raise not_found()
            return found

    def add_commit(
        self,
        repo: Repo,
        *,
        sha: str | None = None,
        message: str = "",
        author: str | None = None,
        parents: Sequence[str] | None = None,
        branch: str | None = None,
        author_name: str = "",
        author_email: str = "",
        date: str | None = None,
    ) -> str:
        """Record a commit; with ``parents=None`` it extends ``branch`` (default branch)."""
        with self.lock:
            branch = branch or repo.default_branch
            if parents is None:
                tip = repo.branches.get(branch)
                parents = [tip] if tip else []
            for parent in parents:
                if parent not in repo.commits:
                    raise ValueError(f"unknown parent commit {parent}")
            if sha is None:
                seed = f"{repo.full_name}\0{next(self._sha_counter)}\0{message}\0{list(parents)}"
                sha = hashlib.sha1(seed.encode()).hexdigest()
            repo.commits[sha] = Commit(
                sha=sha,
                message=message,
                author=author,
                parents=list(parents),
                author_name=author_name or (author or "unknown"),
                author_email=author_email or f"{author or 'unknown'}@users.noreply.github.com",
                date=date or utc_now(),
            )
            tip = repo.branches.get(branch)
            if tip is None or tip in parents:
                repo.branches[branch] = sha
            return sha

    def resolve(self, repo: Repo, ref: str) -> str | None:
        """A sha (full or unique prefix of 7+), branch, tag, or ``heads/``/``tags/`` ref."""
        with self.lock:
            for prefix in ("refs/", ""):
                if ref.startswith(prefix):
                    ref = ref[len(prefix) :]
            if ref.startswith("heads/") and ref[6:] in repo.branches:
                return repo.branches[ref[6:]]
            if ref.startswith("tags/") and ref[5:] in repo.tags:
                return repo.tags[ref[5:]]
            if ref in repo.commits:
                return ref
            if ref in repo.branches:
                return repo.branches[ref]
            if ref in repo.tags:
                return repo.tags[ref]
            if re.fullmatch(r"[0-9a-f]{7,39}", ref):
                matches = [sha for sha in repo.commits if sha.startswith(ref)]
                if len(matches) == 1:
                    return matches[0]
            return None

    def resolve_or_404(self, repo: Repo, ref: str) -> str:
        sha = self.resolve(repo, ref)
        if sha is None:
            raise ApiError(404, f"No commit found for SHA: {ref}")
        return sha

    def ancestors(self, repo: Repo, sha: str) -> set[str]:
        """The commit and every commit reachable through parents."""
        with self.lock:
            seen: set[str] = set()
            stack = [sha]
            while stack:
                current = stack.pop()
                if current in seen or current not in repo.commits:
                    continue
                seen.add(current)
                stack.extend(repo.commits[current].parents)
            return seen

    def topological(self, repo: Repo, shas: Iterable[str]) -> list[str]:
        """Oldest first, parents before children, as GitHub's compare lists them."""
        wanted = set(shas)
        ordered: list[str] = []
        done: set[str] = set()
        for start in sorted(wanted, key=lambda s: (repo.commits[s].date, s)):
            stack: list[tuple[str, bool]] = [(start, False)]
            while stack:
                sha, expanded = stack.pop()
                if sha in done:
                    continue
                if expanded:
                    done.add(sha)
                    ordered.append(sha)
                    continue
                stack.append((sha, True))
                for parent in reversed(repo.commits[sha].parents):
                    if parent in wanted and parent not in done:
                        stack.append((parent, False))
        return ordered

    def compare(self, repo: Repo, base: str, head: str) -> dict[str, Any]:
        """GitHub's compare: commits reachable from head and not from base."""
        with self.lock:
            base_sha = self.resolve_or_404(repo, base)
            head_sha = self.resolve_or_404(repo, head)
            head_side = self.ancestors(repo, head_sha)
            base_side = self.ancestors(repo, base_sha)
            ahead = self.topological(repo, head_side - base_side)
            behind = base_side - head_side
            common = head_side & base_side
            merge_base = None
            if common:
                # the common ancestor that no other common ancestor descends from, newest first
                candidates = [
                    sha
                    for sha in common
                    if not any(
                        sha in self.ancestors(repo, other) for other in common if other != sha
                    )
                ]
                merge_base = max(candidates, key=lambda s: (repo.commits[s].date, s))
            if not ahead and not behind:
                status = "identical"
            elif not behind:
                status = "ahead"
            elif not ahead:
                status = "behind"
            else:
                status = "diverged"
            return {
                "base": base_sha,
                "head": head_sha,
                "merge_base": merge_base,
                "status": status,
                "ahead_by": len(ahead),
                "behind_by": len(behind),
                "commits": ahead,
            }

    def add_tag(self, repo: Repo, name: str, ref: str) -> str:
        with self.lock:
            sha = self.resolve(repo, ref)
            if sha is None:
                raise ValueError(f"cannot tag unknown commit {ref}")
            repo.tags[name] = sha
            return sha

    def create_ref(self, repo: Repo, ref: str, sha: str) -> None:
        with self.lock:
            if not ref.startswith("refs/") or ref.count("/") < 2:
                raise ApiError(422, "Reference name must start with 'refs/' and have two slashes")
            if sha not in repo.commits:
                raise validation_failed("Reference", "invalid", "sha", "Object does not exist")
            kind, _, short = ref[5:].partition("/")
            table = repo.tags if kind == "tags" else repo.branches if kind == "heads" else None
            if table is None:
                raise ApiError(422, "Only refs/heads and refs/tags are supported here")
            if short in table:
                raise ApiError(422, "Reference already exists")
            if kind == "tags" and short in repo.tags_of_immutable_releases:
                raise ApiError(422, "Cannot create ref: tag was used by an immutable release")
            table[short] = sha

    def delete_ref(self, repo: Repo, ref: str) -> None:
        with self.lock:
            kind, _, short = ref.removeprefix("refs/").partition("/")
            table = repo.tags if kind == "tags" else repo.branches if kind == "heads" else None
            if table is None or short not in table:
                raise ApiError(422, "Reference does not exist")
            if kind == "tags" and short in repo.tags_of_immutable_releases:
                raise ApiError(422, "Cannot delete a tag of an immutable release")
            del table[short]

    def add_pull(
        self,
        repo: Repo,
        *,
        author: str,
        commits: Sequence[str],
        merge_commit_sha: str | None = None,
        reviews: Iterable[Sequence[str] | dict[str, str]] = (),
        number: int | None = None,
        title: str = "",
        body: str = "",
        base: str | None = None,
        head_ref: str | None = None,
        merged: bool | None = None,
    ) -> int:
        with self.lock:
            if not commits:
                raise ValueError("a pull request needs at least one commit")
            for sha in [*commits, *([merge_commit_sha] if merge_commit_sha else [])]:
                if sha not in repo.commits:
                    raise ValueError(f"unknown commit {sha}")
            if number is None:
                number = max(repo.pulls, default=0) + 1
            if number in repo.pulls:
                raise ValueError(f"pull request #{number} already exists")
            is_merged = merge_commit_sha is not None if merged is None else merged
            head_sha = commits[-1]
            created = repo.commits[commits[0]].date
            head_message = repo.commits[head_sha].message
            default_title = head_message.splitlines()[0] if head_message else f"PR #{number}"
            pull = PullRequest(
                number=number,
                id=self.next_id(),
                author=author,
                title=title or default_title,
                body=body,
                head_sha=head_sha,
                head_ref=head_ref or f"{author}/change-{number}",
                base_ref=base or repo.default_branch,
                merged=is_merged,
                merge_commit_sha=merge_commit_sha,
                commits=list(commits),
                reviews=[],
                created_at=created,
                merged_at=repo.commits[merge_commit_sha].date
                if is_merged and merge_commit_sha
                else None,
            )
            repo.pulls[number] = pull
            for review in reviews:
                self.add_review(repo, number, review)
            return number

    def add_review(self, repo: Repo, number: int, review: Sequence[str] | dict[str, str]) -> None:
        """``(user, state)``, ``(user, state, submitted_at)`` or a dict with those keys."""
        with self.lock:
            pull = repo.pulls[number]
            if isinstance(review, dict):
                user, state = review["user"], review["state"]
                submitted = review.get("submitted_at") or utc_now()
                body = review.get("body", "")
            else:
                user, state = review[0], review[1]
                submitted = review[2] if len(review) > 2 else utc_now()
                body = ""
            if state not in REVIEW_STATES:
                raise ValueError(f"review state must be one of {REVIEW_STATES}, not {state}")
            pull.reviews.append(
                Review(
                    id=self.next_id(),
                    user=user,
                    state=state,
                    submitted_at=submitted,
                    body=body,
                    commit_id=pull.head_sha,
                )
            )

    def pulls_for_commit(self, repo: Repo, sha: str) -> list[PullRequest]:
        with self.lock:
            return [
                pull
                for pull in sorted(repo.pulls.values(), key=lambda p: -p.number)
                if sha in pull.commits or sha == pull.merge_commit_sha
            ]

    # -- releases ---------------------------------------------------------------------------

    def releases_newest_first(self, repo: Repo, include_drafts: bool) -> list[Release]:
        with self.lock:
            return [
                release
                for release in sorted(repo.releases.values(), key=lambda r: -r.id)
                if include_drafts or not release.draft
            ]

    def release(self, repo: Repo, release_id: int, include_drafts: bool = True) -> Release:
        with self.lock:
            found = repo.releases.get(release_id)
            if found is None or (found.draft and not include_drafts):
                raise not_found()
            return found

    def release_by_tag(self, repo: Repo, tag: str) -> Release:
        """Like GitHub: published releases only; a draft is found by listing, never here."""
        with self.lock:
            for release in repo.releases.values():
                if release.tag_name == tag and not release.draft:
                    return release
            raise not_found()

    def latest_release(self, repo: Repo) -> Release:
        with self.lock:
            if repo.latest_release_id is not None and repo.latest_release_id in repo.releases:
                return repo.releases[repo.latest_release_id]
            published = [r for r in repo.releases.values() if not r.draft and not r.prerelease]
            if not published:
                raise not_found()
            return max(published, key=lambda r: (r.published_at or "", r.id))

    def create_release(
        self,
        repo: Repo,
        author: str,
        *,
        tag_name: str,
        target_commitish: str | None = None,
        name: str | None = None,
        body: str | None = None,
        draft: bool = False,
        prerelease: bool = False,
        make_latest: str = "true",
    ) -> Release:
        with self.lock:
            if not tag_name:
                raise validation_failed("Release", "missing_field", "tag_name")
            if make_latest not in ("true", "false", "legacy"):
                raise validation_failed("Release", "invalid", "make_latest")
            release_id = self.next_id()
            release = Release(
                id=release_id,
                tag_name=tag_name,
                target_commitish=target_commitish or repo.default_branch,
                name=name,
                body=body,
                draft=True,
                prerelease=prerelease,
                make_latest=make_latest,
                author=author,
                created_at=utc_now(),
                published_at=None,
                untagged_slug=hashlib.sha1(f"{repo.id}:{release_id}".encode()).hexdigest()[:20],
            )
            if not draft:
                self._publish(repo, release)
            repo.releases[release.id] = release
            return release

    def _publish(self, repo: Repo, release: Release) -> None:
        """Draft → published: tag must be free of other published releases; create it if new."""
        for other in repo.releases.values():
            if other.id != release.id and not other.draft and other.tag_name == release.tag_name:
                raise validation_failed("Release", "already_exists", "tag_name")
        if release.tag_name in repo.tags_of_immutable_releases:
            raise validation_failed(
                "Release", "custom", "tag_name", "tag_name was used by an immutable release"
            )
        if release.tag_name not in repo.tags:
            sha = self.resolve(repo, release.target_commitish)
            if sha is None:
                raise validation_failed("Release", "invalid", "target_commitish")
            repo.tags[release.tag_name] = sha
        release.draft = False
        release.published_at = utc_now()
        release.updated_at = release.published_at
        if repo.immutable_releases:
            release.immutable = True
            repo.tags_of_immutable_releases.add(release.tag_name)
        if release.make_latest == "true" and not release.prerelease:
            repo.latest_release_id = release.id
        elif release.make_latest == "legacy":
            repo.latest_release_id = None

    def update_release(self, repo: Repo, release_id: int, changes: dict[str, Any]) -> Release:
        with self.lock:
            release = self.release(repo, release_id)
            if release.immutable and (
                ("tag_name" in changes and changes["tag_name"] != release.tag_name)
                or changes.get("draft") is True
            ):
                raise ApiError(422, IMMUTABLE_TAG_MESSAGE)
            for key in ("tag_name", "target_commitish", "name", "body"):
                if key in changes and changes[key] is not None:
                    setattr(release, key, changes[key])
            if "prerelease" in changes:
                release.prerelease = bool(changes["prerelease"])
            if "make_latest" in changes:
                release.make_latest = str(changes["make_latest"]).lower()
            release.updated_at = utc_now()
            if changes.get("draft") is False and release.draft:
                self._publish(repo, release)
            elif changes.get("draft") is True and not release.draft:
                release.draft = True
                release.published_at = None
                if repo.latest_release_id == release.id:
                    repo.latest_release_id = None
            elif (
                not release.draft
                and not release.prerelease
                and changes.get("make_latest") == "true"
            ):
                repo.latest_release_id = release.id
            return release

    def delete_release(self, repo: Repo, release_id: int) -> None:
        with self.lock:
            release = self.release(repo, release_id)
            for asset_id in release.asset_ids:
                repo.assets.pop(asset_id, None)
            del repo.releases[release_id]
            if repo.latest_release_id == release_id:
                repo.latest_release_id = None

    # -- assets -----------------------------------------------------------------------------

    def assets_of(self, repo: Repo, release: Release) -> list[Asset]:
        with self.lock:
            return [repo.assets[asset_id] for asset_id in release.asset_ids]

    def asset(self, repo: Repo, asset_id: int) -> Asset:
        with self.lock:
            found = repo.assets.get(asset_id)
            if found is None:
                raise not_found()
            return found

    def check_upload(self, repo: Repo, release_id: int, name: str) -> tuple[Release, str]:
        """The checks GitHub makes before it accepts an upload's bytes; returns the final name."""
        with self.lock:
            release = self.release(repo, release_id)
            if release.immutable:
                raise ApiError(422, IMMUTABLE_UPLOAD_MESSAGE)
            if not name:
                raise validation_failed("ReleaseAsset", "missing_field", "name")
            final = sanitize_asset_name(name)
            if any(asset.name == final for asset in self.assets_of(repo, release)):
                raise validation_failed("ReleaseAsset", "already_exists", "name")
            return release, final

    def add_asset(
        self,
        repo: Repo,
        release_id: int,
        *,
        name: str,
        data: bytes,
        uploader: str,
        label: str = "",
        content_type: str = "application/octet-stream",
        state: str = "uploaded",
    ) -> Asset:
        with self.lock:
            release, final = self.check_upload(repo, release_id, name)
            now = utc_now()
            asset = Asset(
                id=self.next_id(),
                release_id=release.id,
                name=final,
                label=label,
                content_type=content_type,
                state=state,
                data=data,
                uploader=uploader,
                created_at=now,
                updated_at=now,
            )
            repo.assets[asset.id] = asset
            release.asset_ids.append(asset.id)
            return asset

    def update_asset(self, repo: Repo, asset_id: int, changes: dict[str, Any]) -> Asset:
        with self.lock:
            asset = self.asset(repo, asset_id)
            release = repo.releases[asset.release_id]
            if release.immutable:
                raise ApiError(422, IMMUTABLE_ASSET_CHANGE_MESSAGE)
            new_name = changes.get("name")
            if new_name and new_name != asset.name:
                final = sanitize_asset_name(str(new_name))
                if any(a.name == final for a in self.assets_of(repo, release) if a.id != asset_id):
                    raise validation_failed("ReleaseAsset", "already_exists", "name")
                asset.name = final
            if changes.get("label") is not None:
                asset.label = str(changes["label"])
            if changes.get("state") in ("uploaded", "open"):
                asset.state = str(changes["state"])
            asset.updated_at = utc_now()
            return asset

    def delete_asset(self, repo: Repo, asset_id: int) -> None:
        with self.lock:
            asset = self.asset(repo, asset_id)
            release = repo.releases[asset.release_id]
            if release.immutable:
                raise ApiError(422, IMMUTABLE_ASSET_CHANGE_MESSAGE)
            release.asset_ids.remove(asset_id)
            del repo.assets[asset_id]

    # -- debugging --------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Everything except asset bytes, as plain JSON-able data."""
        with self.lock:
            repos = []
            for repo in self.repos.values():
                repos.append(
                    {
                        "owner": repo.owner,
                        "name": repo.name,
                        "default_branch": repo.default_branch,
                        "immutable_releases": repo.immutable_releases,
                        "branches": dict(repo.branches),
                        "tags": dict(repo.tags),
                        "commits": [
                            {
                                "sha": c.sha,
                                "message": c.message,
                                "author": c.author,
                                "parents": c.parents,
                                "date": c.date,
                            }
                            for c in repo.commits.values()
                        ],
                        "pulls": [
                            {
                                "number": p.number,
                                "author": p.author,
                                "merged": p.merged,
                                "merge_commit_sha": p.merge_commit_sha,
                                "commits": p.commits,
                                "reviews": [
                                    {
                                        "user": r.user,
                                        "state": r.state,
                                        "submitted_at": r.submitted_at,
                                    }
                                    for r in p.reviews
                                ],
                            }
                            for p in repo.pulls.values()
                        ],
                        "releases": [
                            {
                                "id": r.id,
                                "tag_name": r.tag_name,
                                "target_commitish": r.target_commitish,
                                "name": r.name,
                                "draft": r.draft,
                                "prerelease": r.prerelease,
                                "immutable": r.immutable,
                                "published_at": r.published_at,
                                "assets": [
                                    {
                                        "id": a.id,
                                        "name": a.name,
                                        "label": a.label,
                                        "state": a.state,
                                        "size": a.size,
                                        "digest": a.digest,
                                        "content_type": a.content_type,
                                        "download_count": a.download_count,
                                    }
                                    for a in self.assets_of(repo, r)
                                ],
                            }
                            for r in sorted(repo.releases.values(), key=lambda r: r.id)
                        ],
                        "latest_release_id": repo.latest_release_id,
                    }
                )
            return {"repos": repos}
