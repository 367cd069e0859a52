using System.Text.Json;
using System.Text.Json.Nodes;
using Chainwalk.Host;

namespace Chainwalk.Engine;

/// <summary>
/// State a match or target keeps between packets (a limit's tokens, a recent list, a quota's remainder):
/// the kernel's per-rule private data or a per-namespace named object. Saved with the host so that
/// successive <c>trace</c> commands see one kernel.
/// </summary>
public interface IRuntimeState
{
    /// <summary>The state as JSON, or null when it is at its initial value and need not be kept.</summary>
    JsonNode? Save();

    /// <summary>Restores what <see cref="Save"/> wrote.</summary>
    void Load(JsonNode node);
}

/// <summary>
/// The runtime side of the virtual kernel that is not rules, routes or conntrack: the clock, the random
/// source, and every extension's state, keyed per rule (the rule's identity in its table) or by name.
/// </summary>
public sealed class RuntimeState
{
    private readonly Dictionary<string, object> _objects = new(StringComparer.Ordinal);
    private readonly Dictionary<string, JsonNode> _saved = new(StringComparer.Ordinal);

    /// <summary>Seconds on the host clock (the virtual host's <c>Clock</c>).</summary>
    public double Now { get; set; }

    /// <summary>The random source of statistic --mode random, NAT port choice and the like (seedable).</summary>
    public Random Random { get; set; } = new SeededRandom(1);

    /// <summary>
    /// Test-only: where a NAT port (or ICMP id) search would start from a random offset, the pick to take instead
    /// (the kernel's, read back by the conformance harness); null in normal use. See <see cref="Nat.INatKeyChooser"/>.
    /// </summary>
    public Nat.INatKeyChooser? NatKeyChooser { get; set; }

    /// <summary>The state stored under <paramref name="key"/>, created (and loaded from saved JSON) on first use.</summary>
    public T Get<T>(string key, Func<T> create) where T : class
    {
        if (_objects.TryGetValue(key, out object? o) && o is T t) return t;
        T made = create();
        if (made is IRuntimeState rs && _saved.TryGetValue(key, out JsonNode? node)) rs.Load(node);
        _objects[key] = made;
        return made;
    }

    /// <summary>Whether a state object exists (or was saved) under <paramref name="key"/>.</summary>
    public bool Has(string key) => _objects.ContainsKey(key) || _saved.ContainsKey(key);

    public IEnumerable<KeyValuePair<string, object>> Objects => _objects;

    /// <summary>Forgets all states (a ruleset replaced by legacy iptables resets them; tests).</summary>
    public void Clear()
    {
        _objects.Clear();
        _saved.Clear();
    }

    /// <summary>The saved form: one JSON object, key → state.</summary>
    public JsonObject Save()
    {
        var o = new JsonObject();
        foreach (var kv in _saved)
        {
            if (!_objects.ContainsKey(kv.Key)) o[kv.Key] = kv.Value.DeepClone();
        }
        foreach (var kv in _objects.OrderBy(k => k.Key, StringComparer.Ordinal))
        {
            if (kv.Value is IRuntimeState rs && rs.Save() is { } node) o[kv.Key] = node;
        }
        return o;
    }

    /// <summary>The file in the host directory that keeps this state between commands.</summary>
    public const string FileName = "runtime.json";

    /// <summary>The host's saved runtime state (empty when there is none), with the clock at <paramref name="now"/>.</summary>
    public static RuntimeState Load(HostStore store, double now = 0)
    {
        var state = new RuntimeState { Now = now };
        string path = Path.Combine(store.Directory, FileName);
        if (!File.Exists(path)) return state;
        try
        {
            if (JsonNode.Parse(File.ReadAllText(path)) is JsonObject o) state.Load(o);
        }
        catch (JsonException ex)
        {
            throw new InvalidDataException($"{path}: {ex.Message}", ex);
        }
        return state;
    }

    /// <summary>Writes the state to the host directory atomically (nothing when there is nothing to keep and no file yet).</summary>
    public void Save(HostStore store)
    {
        JsonObject o = Save();
        string path = Path.Combine(store.Directory, FileName);
        if (o.Count > 0 || File.Exists(path))
            HostStore.WriteAtomic(path, o.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
    }

    public void Load(JsonObject o)
    {
        _saved.Clear();
        _objects.Clear();
        foreach (var kv in o)
        {
            if (kv.Value is not null) _saved[kv.Key] = kv.Value.DeepClone();
        }
    }
}
