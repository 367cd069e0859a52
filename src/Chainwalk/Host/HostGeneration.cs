namespace Chainwalk.Host;

// The host's mutable parts, each moving its host's generation (VirtualHost.Generation) on every change.

/// <summary>
/// The host's list of links, addresses or routes: a list that moves its host's <see cref="VirtualHost.Generation"/> on every
/// change. A <see cref="Link"/> put in a host's list belongs to that host from now on (its changes move that host's
/// generation): a link is on one host at a time, as a net_device is in one network namespace.
/// </summary>
public sealed class HostList<T> : List<T>
{
    private readonly VirtualHost _host;

    public HostList(VirtualHost host)
    {
        _host = host;
    }

    public new T this[int index]
    {
        get => base[index];
        set
        {
            base[index] = value;
            Adopt(value);
            _host.Changed();
        }
    }

    public new void Add(T item)
    {
        base.Add(item);
        Adopt(item);
        _host.Changed();
    }

    public new void AddRange(IEnumerable<T> items)
    {
        foreach (T item in items)
        {
            base.Add(item);
            Adopt(item);
        }
        _host.Changed();
    }

    public new void Insert(int index, T item)
    {
        base.Insert(index, item);
        Adopt(item);
        _host.Changed();
    }

    /// <summary>A link put in this list belongs to this list's host (the other items are immutable records).</summary>
    private void Adopt(T item)
    {
        if (item is Link link) link.Host = _host;
    }

    public new bool Remove(T item)
    {
        bool removed = base.Remove(item);
        _host.Changed();
        return removed;
    }

    public new void RemoveAt(int index)
    {
        base.RemoveAt(index);
        _host.Changed();
    }

    public new int RemoveAll(Predicate<T> match)
    {
        int n = base.RemoveAll(match);
        _host.Changed();
        return n;
    }

    public new void RemoveRange(int index, int count)
    {
        base.RemoveRange(index, count);
        _host.Changed();
    }

    public new void Clear()
    {
        base.Clear();
        _host.Changed();
    }

    public new void Sort(Comparison<T> comparison)
    {
        base.Sort(comparison);
        _host.Changed();
    }
}

/// <summary>A sorted set of the host (hidden kernel routes, route tables) that moves its host's <see cref="VirtualHost.Generation"/> on every change.</summary>
public sealed class HostSortedSet : SortedSet<string>
{
    private readonly VirtualHost _host;

    public HostSortedSet(VirtualHost host)
        : base(StringComparer.Ordinal)
    {
        _host = host;
    }

    public new bool Add(string item)
    {
        bool added = base.Add(item);
        _host.Changed();
        return added;
    }

    public new bool Remove(string item)
    {
        bool removed = base.Remove(item);
        _host.Changed();
        return removed;
    }

    public new void Clear()
    {
        base.Clear();
        _host.Changed();
    }
}

/// <summary>The host's sysctls (key → value text), moving its host's <see cref="VirtualHost.Generation"/> on every change.</summary>
public sealed class SysctlTable : SortedDictionary<string, string>
{
    private readonly VirtualHost _host;

    public SysctlTable(VirtualHost host)
        : base(StringComparer.Ordinal)
    {
        _host = host;
    }

    public new string this[string key]
    {
        get => base[key];
        set
        {
            base[key] = value;
            _host.Changed();
        }
    }

    public new void Add(string key, string value)
    {
        base.Add(key, value);
        _host.Changed();
    }

    public new bool Remove(string key)
    {
        bool removed = base.Remove(key);
        _host.Changed();
        return removed;
    }

    public new void Clear()
    {
        base.Clear();
        _host.Changed();
    }
}
