using Chainwalk.Net;

namespace Chainwalk.Rules;

/// <summary>
/// All tables of one family. A table exists once something created it (a command or a restore naming
/// it), as with iptables-nft, where iptables-save prints only the tables that exist.
/// </summary>
public sealed class Ruleset
{
    private readonly Dictionary<string, Table> _tables = new(StringComparer.Ordinal);

    public Ruleset(IpFamily family)
    {
        Family = family;
    }

    public IpFamily Family { get; }

    /// <summary>Existing tables, in iptables-nft save order.</summary>
    public IEnumerable<Table> Tables
    {
        get
        {
            foreach (TableInfo info in TableInfo.SaveOrder)
            {
                if (_tables.TryGetValue(info.Name, out Table? t)) yield return t;
            }
        }
    }

    public Table? Find(string name) => _tables.TryGetValue(name, out Table? t) ? t : null;

    /// <summary>Moves whenever a table is added, replaced or removed (what the packet walker's table memo checks).</summary>
    internal int Version { get; private set; }

    /// <summary>The table, created empty (built-in chains, ACCEPT policies) if it does not exist yet.</summary>
    public Table GetOrCreate(TableInfo info)
    {
        if (!_tables.TryGetValue(info.Name, out Table? t))
        {
            t = new Table(info, Family);
            _tables.Add(info.Name, t);
            Version++;
            RulesGeneration.Changed();
        }
        return t;
    }

    public void Replace(Table table)
    {
        _tables[table.Name] = table;
        Version++;
        RulesGeneration.Changed();
    }

    public void Remove(string name)
    {
        _tables.Remove(name);
        Version++;
        RulesGeneration.Changed();
    }

    public Ruleset Clone()
    {
        var r = new Ruleset(Family);
        foreach (var kv in _tables) r._tables.Add(kv.Key, kv.Value.Clone());
        return r;
    }

    /// <summary>A new ruleset holding the same table objects (a snapshot of which tables exist, not a deep copy).</summary>
    public Ruleset ShallowCopy()
    {
        var r = new Ruleset(Family);
        foreach (var kv in _tables) r._tables.Add(kv.Key, kv.Value);
        return r;
    }

    public int RuleCount => _tables.Values.Sum(t => t.RuleCount);
}
