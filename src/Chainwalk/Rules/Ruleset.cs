using Chainwalk.Net;

namespace Chainwalk.Rules;

/// <summary>
/// All tables of one family. A table exists once something created it (a command or a restore naming
/// it), as with iptables-nft, where iptables-save prints only the tables that exist.
/// </summary>
public sealed class Ruleset
{
    private readonly Dictionary<string, Table> _tables = new(StringComparer.Ordinal);

    /// <summary>This rule set's generation, shared with its shallow copies (they share its tables, which move it).</summary>
    private readonly RulesGeneration _generation;

    public Ruleset(IpFamily family)
        : this(family, new RulesGeneration())
    {
    }

    private Ruleset(IpFamily family, RulesGeneration generation)
    {
        Family = family;
        _generation = generation;
    }

    /// <summary>
    /// Moves on every change of these tables that can change a walk's path (<see cref="RulesGeneration"/>); no other rule
    /// set has the same value (a shallow copy has while neither changed). What the engine remembers holds while it stands.
    /// </summary>
    public long Generation
    {
        [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
        get => _generation.Value;
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
            t = new Table(info, Family) { Generation = _generation };
            _tables.Add(info.Name, t);
            Version++;
            _generation.Changed();
        }
        return t;
    }

    /// <summary>
    /// Puts <paramref name="table"/> in place of the table of its name. The table belongs to this rule set from now on (its
    /// changes move this rule set's generation): a table is in one rule set (and its shallow copies) at a time.
    /// </summary>
    public void Replace(Table table)
    {
        _tables[table.Name] = table;
        table.Generation = _generation;
        Version++;
        _generation.Changed();
    }

    public void Remove(string name)
    {
        _tables.Remove(name);
        Version++;
        _generation.Changed();
    }

    public Ruleset Clone()
    {
        var r = new Ruleset(Family);
        foreach (var kv in _tables)
        {
            Table t = kv.Value.Clone();
            t.Generation = r._generation;
            r._tables.Add(kv.Key, t);
        }
        return r;
    }

    /// <summary>
    /// A new ruleset holding the same table objects (a snapshot of which tables exist, not a deep copy). It shares this
    /// rule set's generation: a change of a shared table moves both (the tables know one generation), and so does a table
    /// added to or removed from either (over-counting only makes memos be made again).
    /// </summary>
    public Ruleset ShallowCopy()
    {
        var r = new Ruleset(Family, _generation);
        foreach (var kv in _tables) r._tables.Add(kv.Key, kv.Value);
        return r;
    }

    public int RuleCount => _tables.Values.Sum(t => t.RuleCount);
}
