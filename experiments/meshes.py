"""``--mesh``/``--rules`` (``flagcheck.mesh_flags``) for the recipes on the generic train step: one call from the
flags to a placed state, the train step's shardings and the batch placement (deepcore.train.sharding)."""
import common


def mesh_plan(args, devices, model, spec, tx, state):
    """``--mesh``/``--rules`` (``flagcheck.mesh_flags``) of a script on the generic train step: ``(state placed,
    mesh, train_step shardings, wrap_loss, put_batch)`` by ``deepcore.train.sharding.plan`` (without ``--mesh``:
    data-parallel over ``devices``, parameters replicated); ``put_batch(None)`` is None. A rule set that does not
    fit the model or the mesh is one line (UsageError) naming the parameter path."""
    from deepcore.train import parallel, sharding

    try:
        mesh, kw, wrap_loss, put = sharding.plan(args.mesh, args.rules, devices, model, spec, tx, state)
    except ValueError as e:
        raise common.UsageError(f"--rules {args.rules} on --mesh {args.mesh}: {e}") from None
    return (parallel.place_state(state, kw["state_sharding"]), mesh, kw, wrap_loss,
            lambda b: b if b is None else put(b))
