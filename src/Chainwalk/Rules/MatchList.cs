using System.Collections;

namespace Chainwalk.Rules;

/// <summary>
/// A rule's <c>-m</c> matches in order: one exact-size array (shared empty when none) held in the rule itself, not a
/// list object (a rule set of 100k rules saves the list object and its spare slots). <see cref="Rule.Matches"/> returns
/// it by reference, so <c>rule.Matches.Add(m)</c> changes the rule; a copy (<c>var ms = rule.Matches</c>) is a snapshot.
/// </summary>
public struct MatchList : IReadOnlyList<MatchUse>
{
    private MatchUse[]? _items;

    private readonly MatchUse[] Items => _items ?? [];

    public readonly int Count => _items?.Length ?? 0;

    /// <summary>The match at <paramref name="index"/>; setting one copies the array (it may be shared among rules: see <see cref="Share"/>).</summary>
    public MatchUse this[int index]
    {
        readonly get => Items[index];
        set
        {
            var a = (MatchUse[])Items.Clone();
            a[index] = value;
            _items = a;
        }
    }

    /// <summary>The array itself, for a reader that made it and has not shared it yet (written in place).</summary>
    internal readonly Span<MatchUse> Unshared => Items;

    /// <summary>The array itself, to hold it once for rules with the same match objects (never written in place after).</summary>
    internal readonly MatchUse[] Array => Items;

    /// <summary>Holds <paramref name="same"/> (an array equal element by element to this one) instead of this one.</summary>
    internal void Share(MatchUse[] same) => _items = same;

    public void Add(MatchUse m)
    {
        MatchUse[] old = Items;
        var a = new MatchUse[old.Length + 1];
        old.CopyTo(a, 0);
        a[old.Length] = m;
        _items = a;
    }

    public void Insert(int index, MatchUse m)
    {
        MatchUse[] old = Items;
        ArgumentOutOfRangeException.ThrowIfGreaterThan((uint)index, (uint)old.Length, nameof(index));
        var a = new MatchUse[old.Length + 1];
        System.Array.Copy(old, 0, a, 0, index);
        a[index] = m;
        System.Array.Copy(old, index, a, index + 1, old.Length - index);
        _items = a;
    }

    public void RemoveAt(int index)
    {
        MatchUse[] old = Items;
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)index, (uint)old.Length, nameof(index));
        if (old.Length == 1) { _items = null; return; }
        var a = new MatchUse[old.Length - 1];
        System.Array.Copy(old, 0, a, 0, index);
        System.Array.Copy(old, index + 1, a, index, old.Length - index - 1);
        _items = a;
    }

    public void Clear() => _items = null;

    /// <summary>Replaces the matches with <paramref name="items"/> (kept, not copied).</summary>
    public void SetAll(MatchUse[] items) => _items = items.Length == 0 ? null : items;

    public readonly ReadOnlySpan<MatchUse> AsSpan() => Items;

    public readonly MatchUse[] ToArray() => (MatchUse[])Items.Clone();

    public readonly ReadOnlySpan<MatchUse>.Enumerator GetEnumerator() => new ReadOnlySpan<MatchUse>(Items).GetEnumerator();

    readonly IEnumerator<MatchUse> IEnumerable<MatchUse>.GetEnumerator() => ((IEnumerable<MatchUse>)Items).GetEnumerator();

    readonly IEnumerator IEnumerable.GetEnumerator() => Items.GetEnumerator();
}
