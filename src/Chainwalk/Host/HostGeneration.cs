namespace Chainwalk.Host;

/// <summary>
/// A process-wide counter that moves whenever any virtual host's interfaces, addresses, routes or sysctls
/// change: what the pipeline derives from them (the compiled routing tables, per-device settings, parsed
/// sysctls) is kept while the counter stands still and made again when it moved, as the kernel's FIB and
/// nexthop caches are invalidated by its routing generation id (rt_genid). Over-counting is harmless (a rebuild);
/// a change it did not see would be a stale answer, so every mutable part of <see cref="VirtualHost"/> reports here.
/// </summary>
public static class HostGeneration
{
    private static long _value;

    /// <summary>The current generation.</summary>
    public static long Value => Volatile.Read(ref _value);

    /// <summary>Something a routing decision may depend on changed.</summary>
    public static void Changed() => Interlocked.Increment(ref _value);
}

/// <summary>The host's list of links, addresses or routes: a list that moves <see cref="HostGeneration"/> on every change.</summary>
public sealed class HostList<T> : List<T>
{
    public new T this[int index]
    {
        get => base[index];
        set
        {
            base[index] = value;
            HostGeneration.Changed();
        }
    }

    public new void Add(T item)
    {
        base.Add(item);
        HostGeneration.Changed();
    }

    public new void AddRange(IEnumerable<T> items)
    {
        base.AddRange(items);
        HostGeneration.Changed();
    }

    public new void Insert(int index, T item)
    {
        base.Insert(index, item);
        HostGeneration.Changed();
    }

    public new bool Remove(T item)
    {
        bool removed = base.Remove(item);
        HostGeneration.Changed();
        return removed;
    }

    public new void RemoveAt(int index)
    {
        base.RemoveAt(index);
        HostGeneration.Changed();
    }

    public new int RemoveAll(Predicate<T> match)
    {
        int n = base.RemoveAll(match);
        HostGeneration.Changed();
        return n;
    }

    public new void RemoveRange(int index, int count)
    {
        base.RemoveRange(index, count);
        HostGeneration.Changed();
    }

    public new void Clear()
    {
        base.Clear();
        HostGeneration.Changed();
    }

    public new void Sort(Comparison<T> comparison)
    {
        base.Sort(comparison);
        HostGeneration.Changed();
    }
}

/// <summary>A sorted set of the host (hidden kernel routes, route tables) that moves <see cref="HostGeneration"/> on every change.</summary>
public sealed class HostSortedSet : SortedSet<string>
{
    public HostSortedSet()
        : base(StringComparer.Ordinal)
    {
    }

    public new bool Add(string item)
    {
        bool added = base.Add(item);
        HostGeneration.Changed();
        return added;
    }

    public new bool Remove(string item)
    {
        bool removed = base.Remove(item);
        HostGeneration.Changed();
        return removed;
    }

    public new void Clear()
    {
        base.Clear();
        HostGeneration.Changed();
    }
}

/// <summary>The host's sysctls (key → value text), moving <see cref="HostGeneration"/> on every change.</summary>
public sealed class SysctlTable : SortedDictionary<string, string>
{
    public SysctlTable()
        : base(StringComparer.Ordinal)
    {
    }

    public new string this[string key]
    {
        get => base[key];
        set
        {
            base[key] = value;
            HostGeneration.Changed();
        }
    }

    public new void Add(string key, string value)
    {
        base.Add(key, value);
        HostGeneration.Changed();
    }

    public new bool Remove(string key)
    {
        bool removed = base.Remove(key);
        HostGeneration.Changed();
        return removed;
    }

    public new void Clear()
    {
        base.Clear();
        HostGeneration.Changed();
    }
}
