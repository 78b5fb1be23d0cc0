"""Run one node of a pipeline's workflow, unchanged, as the pipeline's framework runs it: run by the pipeline's
own Python (``python run_node.py MODULE:CLASS --recipe-run-id N ...``), one process per node.

obsflow is the host. The task class is the pipeline's own; what a DKIST data center's services did for it is
done here, by obsflow's host methods placed before the class's own in a subclass of the same name:

- the Globus copy into scratch (TransferL0Data) is a copy from S3 (the frames obsflow planned), each raw frame's
  SPEC-0122 header translated to SPEC-0214 L0 by the pipeline's own dkist-header-validator, as a DKIST data
  center's ingest does before a frame reaches its object store;
- the Globus and object-store copies out of scratch (TransferL1Data, TransferTrialData) and the interservice
  bus messages (PublishCatalogAndQualityMessages) are recorded, one JSON line each, in ``--collect-to``:
  obsflow then collects those files into its catalogue from the record.

Scratch (SCRATCH_BASE_PATH), the scratch inventory (Redis) and the metadata store (GraphQL) come from the
environment (MESH_CONFIG), as the framework reads them.
"""

import argparse
import importlib
import json
import os
import sys
from pathlib import Path


def _record(entry: dict) -> None:
    with open(os.environ["OBSFLOW_COLLECT_TO"], "a", encoding="utf-8") as record:
        record.write(json.dumps(entry) + "\n")


def _s3():
    import boto3  # the pipeline's own (dkist-processing-common depends on it); endpoint from AWS_ENDPOINT_URL

    return boto3.client("s3")


def _bucket_and_key(path) -> tuple[str, str]:
    """Globus addresses an object as /<bucket>/<key>."""
    parts = Path(path).parts
    parts = parts[1:] if parts and parts[0] == "/" else parts
    return parts[0], "/".join(parts[1:])


def _as_spec214_l0(path: Path) -> None:
    """A raw frame's header in SPEC-0214 L0 form; a frame already in it, and any other FITS file (a parameter's),
    are left as they are."""
    from astropy.io import fits
    from dkist_header_validator.translator import translate_spec122_to_spec214_l0

    with fits.open(path) as hdus:
        hdu = next(h for h in hdus if h.data is not None)
        if "ELEV_ANG" in hdu.header or "DKIST004" not in hdu.header:
            return
        translated = translate_spec122_to_spec214_l0(fits.HDUList([fits.PrimaryHDU(hdu.data, hdu.header)]))
        translated.writeto(path, overwrite=True, checksum=True)


class ObsflowHost:
    """What a DKIST data center provides around a task, as obsflow provides it."""

    def globus_transfer_object_store_to_scratch(self, transfer_items, label: str) -> None:
        s3 = _s3()
        scratch = Path(os.environ["SCRATCH_BASE_PATH"]).resolve()
        for item in transfer_items:
            bucket, key = _bucket_and_key(item.source_path)
            destination = Path(item.destination_path).resolve()
            if scratch not in destination.parents:  # an object key with '..' in it
                raise ValueError(f"s3://{bucket}/{key} would be staged outside the scratch {scratch}: refused")
            destination.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, key, str(destination))
            if destination.suffix.lower() == ".fits":
                _as_spec214_l0(destination)
        print(f"obsflow host: staged {len(transfer_items)} object(s) from S3 into scratch ({label})")

    def globus_transfer_scratch_to_object_store(self, transfer_items, label: str) -> None:
        for item in transfer_items:
            bucket, key = _bucket_and_key(item.destination_path)
            _record({"kind": "object", "path": str(item.source_path), "bucket": bucket, "key": key})
        print(f"obsflow host: {len(transfer_items)} object(s) to collect ({label})")

    def object_store_upload_movie(self, movie, bucket: str, object_key: str, content_type: str = "video/mp4",
                                  **_ignored) -> None:
        _record({"kind": "object", "path": str(movie), "bucket": bucket, "key": object_key,
                 "content_type": content_type})

    def object_store_remove_folder_objects(self, bucket: str, path) -> list[str]:
        return []  # obsflow's catalogue has no folder objects

    def interservice_bus_publish(self, messages) -> None:
        for message in messages if isinstance(messages, (list, tuple)) else [messages]:
            body = message.body.model_dump(mode="json") if hasattr(message.body, "model_dump") else str(message.body)
            _record({"kind": "message", "type": type(message).__name__, "body": body})


def hosted(task_class: type) -> type:
    """The pipeline's task class with obsflow's host methods first: same name, same code, same module."""
    return type(task_class.__name__, (ObsflowHost, task_class), {"__module__": task_class.__module__,
                                                                  "__doc__": task_class.__doc__})


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="run_node.py", description=__doc__.splitlines()[0])
    parser.add_argument("task", help="MODULE:CLASS of the pipeline's task")
    parser.add_argument("--recipe-run-id", type=int, required=True)
    parser.add_argument("--workflow-name", required=True)
    parser.add_argument("--workflow-version", required=True)
    parser.add_argument("--manual", action="store_true", help="a person runs this task by hand")
    parser.add_argument("--purge", action="store_true",
                        help="a Teardown class: remove the recipe run's scratch files and tags only (a run given up)")
    args = parser.parse_args(argv)
    module, _, name = args.task.partition(":")
    task_class = hosted(getattr(importlib.import_module(module), name))
    with task_class(recipe_run_id=args.recipe_run_id, workflow_name=args.workflow_name,
                    workflow_version=args.workflow_version) as task:
        if args.manual:
            task.is_task_manual = True
        if args.purge:
            task.teardown()
        else:
            task()
    return 0


if __name__ == "__main__":
    sys.exit(main())
