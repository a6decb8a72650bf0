"""Train mynet on an image folder with a plain PyTorch loop; save the state dict.

    python train.py IMAGES_DIR --epochs 5 --out mine.pt

IMAGES_DIR holds train/<class>/*.png (and optionally val/ and test/). The images
are scaled to [0, 1] and normalised with the training set's per-channel mean and
std, which is what autocompress does by default for an image folder, so the
weights work there as they are.
"""

from __future__ import annotations

import argparse

import torch
import torchvision
from mynet import mynet
from torch import nn


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("images")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--out", default="mine.pt")
    args = parser.parse_args()

    torch.manual_seed(0)
    # torchvision's evaluation transform, which autocompress applies with --input-size:
    # the short side resized to size / 0.875, then the center crop
    plain = torchvision.transforms.Compose(
        [
            torchvision.transforms.Resize(round(args.size / 0.875)),
            torchvision.transforms.CenterCrop(args.size),
            torchvision.transforms.ToTensor(),
        ]
    )
    train_set = torchvision.datasets.ImageFolder(f"{args.images}/train", transform=plain)
    # the training set's mean and std, per channel (autocompress's default normalisation)
    stack = torch.stack([image for image, _ in train_set])
    mean, std = stack.mean(dim=(0, 2, 3)), stack.std(dim=(0, 2, 3))
    normalise = torchvision.transforms.Normalize(mean.tolist(), std.tolist())
    train_set.transform = torchvision.transforms.Compose([plain, normalise])
    loader = torch.utils.data.DataLoader(train_set, batch_size=64, shuffle=True)

    channels = stack.shape[1]
    model = mynet(num_classes=len(train_set.classes), in_channels=channels, width=args.width)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(args.epochs):
        model.train()
        correct = total = 0
        for images, labels in loader:
            logits = model(images)
            loss = loss_fn(logits, labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            correct += int((logits.argmax(1) == labels).sum())
            total += len(labels)
        print(f"epoch {epoch + 1}: train accuracy {correct / total:.3f}")
    torch.save(model.state_dict(), args.out)
    print(f"saved {args.out} (classes: {', '.join(train_set.classes)})")


if __name__ == "__main__":
    main()
