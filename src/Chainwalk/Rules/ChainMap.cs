namespace Chainwalk.Rules;

/// <summary>
/// A table's user chains by name: an open-addressing set of the chains themselves (linear probing, the name is the
/// key), about 10 bytes per chain where a dictionary holds an entry of 24 and a bucket of 4. A kube-proxy table has a
/// chain per endpoint, so the map counts per rule.
/// </summary>
internal sealed class ChainMap
{
    /// <summary>The slots: a chain or null. A chain sits at its home slot or after it, with no empty slot between.</summary>
    private Chain?[] _slots = [];

    public int Count { get; private set; }

    /// <summary>At most this share of the slots is used (4/5) before the array doubles.</summary>
    private static bool Full(int count, int capacity) => (long)count * 5 > (long)capacity * 4;

    /// <summary>The home slot of <paramref name="name"/> among <paramref name="capacity"/> (a multiply, not a division).</summary>
    private static int Home(string name, int capacity) => (int)(((ulong)(uint)name.GetHashCode(StringComparison.Ordinal) * (uint)capacity) >> 32);

    public Chain? Find(string name)
    {
        Chain?[] slots = _slots;
        if (slots.Length == 0) return null;
        int i = Home(name, slots.Length);
        while (slots[i] is { } c)
        {
            if (string.Equals(c.Name, name, StringComparison.Ordinal)) return c;
            if (++i == slots.Length) i = 0;
        }
        return null;
    }

    /// <summary>Adds <paramref name="chain"/> under its name; throws when a chain of that name is there.</summary>
    public void Add(Chain chain)
    {
        if (Find(chain.Name) is not null) throw new ArgumentException($"An item with the same key has already been added. Key: {chain.Name}", nameof(chain));
        if (Full(Count + 1, _slots.Length)) Resize(Math.Max(8, _slots.Length * 2));
        Place(_slots, chain);
        Count++;
    }

    private static void Place(Chain?[] slots, Chain chain)
    {
        int i = Home(chain.Name, slots.Length);
        while (slots[i] is not null)
        {
            if (++i == slots.Length) i = 0;
        }
        slots[i] = chain;
    }

    /// <summary>Removes the chain named <paramref name="name"/> and returns it; null when none.</summary>
    public Chain? Remove(string name)
    {
        Chain?[] slots = _slots;
        if (slots.Length == 0) return null;
        int i = Home(name, slots.Length);
        while (slots[i] is { } c)
        {
            if (string.Equals(c.Name, name, StringComparison.Ordinal))
            {
                RemoveAt(slots, i);
                Count--;
                return c;
            }
            if (++i == slots.Length) i = 0;
        }
        return null;
    }

    /// <summary>Empties slot <paramref name="hole"/> and moves back the chains after it that would no longer be found (backward-shift deletion).</summary>
    private static void RemoveAt(Chain?[] slots, int hole)
    {
        slots[hole] = null;
        int n = slots.Length;
        int j = hole;
        while (true)
        {
            if (++j == n) j = 0;
            if (slots[j] is not { } c) return;
            int home = Home(c.Name, n);
            // c may fill the hole when its home is not in the cyclic range (hole, j].
            bool homeInRange = hole <= j ? home > hole && home <= j : home > hole || home <= j;
            if (homeInRange) continue;
            slots[hole] = c;
            slots[j] = null;
            hole = j;
        }
    }

    private void Resize(int capacity)
    {
        var slots = new Chain?[capacity];
        foreach (Chain? c in _slots)
        {
            if (c is not null) Place(slots, c);
        }
        _slots = slots;
    }

    /// <summary>Shrinks the slots to the fewest that keep the map at most 4/5 full.</summary>
    public void TrimExcess()
    {
        int capacity = Count == 0 ? 0 : (int)Math.Min(int.MaxValue, (long)Count * 5 / 4 + 1);
        if (capacity < _slots.Length) Resize(capacity);
    }

    /// <summary>The chains in slot order (no order a caller may rely on).</summary>
    public List<Chain> ToList()
    {
        var list = new List<Chain>(Count);
        foreach (Chain? c in _slots)
        {
            if (c is not null) list.Add(c);
        }
        return list;
    }
}
