"""Ray–box intersection: hand-computed cases, and oriented boxes against the axis-aligned
test in the box's own frame."""

import math

import pytest
import torch

from render3d.rays import ray_aabb, ray_boxes, world_to_box


def test_axis_aligned_hand_cases():
    origins = torch.tensor([[-3.0, 0.0, 0.0], [0.0, 0.0, 0.0], [-3.0, 2.0, 0.0], [3.0, 0.0, 0.0], [0.0, 0.5, -2.0]])
    directions = torch.tensor([[1.0, 0, 0], [0, 0, 1.0], [1.0, 0, 0], [1.0, 0, 0], [0, 0, 2.0]])
    t_near, t_far, hit = ray_aabb(origins, directions, [-1, -1, -1], [1, 1, 1])
    assert hit.tolist() == [True, True, False, False, True]
    torch.testing.assert_close(t_near, torch.tensor([2.0, 0.0, 0.0, 0.0, 0.5]))  # inside: starts at near=0
    torch.testing.assert_close(t_far, torch.tensor([4.0, 1.0, 0.0, 0.0, 1.5]))  # t in units of |d|
    _, t_far_clipped, _ = ray_aabb(origins, directions, [-1, -1, -1], [1, 1, 1], near=0.0, far=3.0)
    assert t_far_clipped[0].item() == 3.0


def test_oriented_boxes_match_axis_aligned_in_box_frame():
    g = torch.Generator().manual_seed(0)
    B, R, M = 2, 50, 3
    angles = torch.rand(B, M, generator=g) * 2 * math.pi
    c, s = torch.cos(angles), torch.sin(angles)
    rotations = torch.zeros(B, M, 3, 3)
    rotations[..., 0, 0], rotations[..., 0, 2], rotations[..., 2, 0], rotations[..., 2, 2] = c, s, -s, c
    rotations[..., 1, 1] = 1  # yaw about +y, like DisCoScene's layouts
    translations = torch.randn(B, M, 3, generator=g)
    scales = torch.rand(B, M, 3, generator=g) + 0.2
    origins = torch.randn(B, R, 3, generator=g) * 4
    directions = torch.nn.functional.normalize(torch.randn(B, R, 3, generator=g), dim=-1)
    t_near, t_far, hit = ray_boxes(origins, directions, rotations, translations, scales)
    assert t_near.shape == (B, R, M) and hit.any() and not hit.all()
    for b in range(B):
        for m in range(M):
            lo = world_to_box(origins[b:b + 1], rotations[b:b + 1, m:m + 1], translations[b:b + 1, m:m + 1],
                              scales[b:b + 1, m:m + 1])[0, 0]
            d_local = (rotations[b, m].T @ directions[b].T).T / scales[b, m]
            ref_near, ref_far, ref_hit = ray_aabb(lo, d_local, [-1, -1, -1], [1, 1, 1])
            assert torch.equal(hit[b, :, m], ref_hit)
            torch.testing.assert_close(t_near[b, :, m], ref_near)
            torch.testing.assert_close(t_far[b, :, m], ref_far)
    # entry and exit points lie on the box surface (max-norm 1 in the box frame)
    for t in (t_near, t_far):
        points = origins[:, :, None] + t[..., None] * directions[:, :, None]
        for m in range(M):
            local = world_to_box(points[:, :, m], rotations[:, m:m + 1], translations[:, m:m + 1],
                                 scales[:, m:m + 1])[:, 0]
            inside_origin = world_to_box(origins, rotations[:, m:m + 1], translations[:, m:m + 1],
                                         scales[:, m:m + 1])[:, 0].abs().amax(-1) < 1
            on_surface = (local.abs().amax(-1) - 1).abs() < 1e-4
            assert bool(on_surface[hit[:, :, m] & ~(inside_origin & (t is t_near))].all())


def test_bad_input():
    with pytest.raises(ValueError, match=r"ray_aabb: argument 'origins' expected shape \[\.\.\., 3\], got \[4, 2\]"):
        ray_aabb(torch.zeros(4, 2), torch.zeros(4, 2), [-1, -1, -1], [1, 1, 1])
    with pytest.raises(ValueError, match="expected aabb_min < aabb_max"):
        ray_aabb(torch.zeros(4, 3), torch.ones(4, 3), [1, -1, -1], [1, 1, 1])
    with pytest.raises(ValueError, match=r"argument 'rotations' expected shape \[B, M, 3, 3\]"):
        ray_boxes(torch.zeros(1, 2, 3), torch.ones(1, 2, 3), torch.zeros(1, 2, 3), torch.zeros(1, 2, 3),
                  torch.ones(1, 2, 3))
    with pytest.raises(ValueError, match="argument 'scales' expected positive half extents"):
        ray_boxes(torch.zeros(1, 2, 3), torch.ones(1, 2, 3), torch.eye(3).expand(1, 1, 3, 3), torch.zeros(1, 1, 3),
                  torch.zeros(1, 1, 3))


def test_differentiable_and_finite_for_parallel_rays():
    g = torch.Generator().manual_seed(1)
    origins = (torch.randn(6, 3, generator=g, dtype=torch.float64) * 0.3).requires_grad_()
    directions = torch.nn.functional.normalize(torch.randn(6, 3, generator=g, dtype=torch.float64), dim=-1)
    directions = directions.requires_grad_()

    def entry_exit(o, d):
        t_near, t_far, _ = ray_aabb(o, d, [-1, -1, -1], [1, 1, 1], near=-10.0)
        return t_near, t_far

    assert torch.autograd.gradcheck(entry_exit, (origins, directions))
    parallel = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]], dtype=torch.float64, requires_grad=True)
    start = torch.tensor([[0.2, 0.3, -3.0], [-3.0, 0.5, 0.1]], dtype=torch.float64, requires_grad=True)
    t_near, t_far, hit = ray_aabb(start, parallel, [-1, -1, -1], [1, 1, 1])
    assert hit.all()
    torch.testing.assert_close(t_near, torch.tensor([2.0, 2.0], dtype=torch.float64))
    grad_o, grad_d = torch.autograd.grad((t_near + t_far).sum(), [start, parallel])
    assert torch.isfinite(grad_o).all() and torch.isfinite(grad_d).all()
